"""Taking back expired hand-outs, the way kombu's ``restore_visible`` does.

An ``unacked_index`` entry older than the visibility timeout belongs to a consumer that
died or hung (celeriac's or Celery's: they share the index). Under kombu's
``unacked_mutex`` (one restorer at a time, kombu's or celeriac's), each such entry's
envelope is flagged redelivered as kombu flags it and pushed back on the right of the
list of every queue its exchange and routing key lead to, so it is served next. Each
entry moves in one script that first checks it was not settled, extended or restored
meanwhile (``scripts/restore.lua``). A message celeriac handed out ``delivery_limit``
times goes to the dead letters instead.

Routing, as kombu's: the default exchange ("") routes to the queue named by the routing
key; another exchange to the queues whose binding (``_kombu.binding.<exchange>``) has
that routing key; none found, to the queue named by the routing key (Celery names its
queues after their routing keys). Engine helper: imports ``keys``, ``envelope``, redis-py.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.kombu_redis import envelope
from celeriac.brokers.kombu_redis.keys import KOMBU_MAX_PRIORITY, Layout

logger = logging.getLogger("celeriac.brokers.kombu_redis")
BATCH = 100  # expired entries restored per mutex hold
UNREADABLE = "unacked"  # the queue whose dead letters hold unacked entries kombu cannot read


@dataclass(frozen=True)
class Buried:
    """An expired hand-out dead-lettered instead of restored: its queue and stream id."""

    queue: str
    entry_id: str


@dataclass(frozen=True)
class Restorer:
    """Restores on one event loop's client; ``scripts`` are that client's."""

    layout: Layout
    visibility: float
    delivery_limit: int
    dead_max: int
    mutex_expire: float

    async def run(self, client: Any, scripts: dict[str, Any]) -> tuple[int, list[Buried]]:
        """Restore up to ``BATCH`` expired entries: how many went back to a queue (0 when
        another process holds the mutex), and those dead-lettered instead."""
        layout = self.layout
        token = uuid.uuid4().hex
        if not await client.set(
            layout.unacked_mutex, token, nx=True, px=max(1, int(self.mutex_expire * 1000))
        ):
            return 0, []  # another consumer is restoring now
        try:
            rows = await scripts["expired"](
                keys=[layout.unacked_index, layout.unacked], args=[repr(self.visibility), BATCH]
            )
            moved, buried = 0, []
            for i in range(0, len(rows), 3):
                tag, score, value = rows[i], rows[i + 1], rows[i + 2]
                done = await self._one(client, scripts, tag, score, value or b"")
                if isinstance(done, Buried):
                    buried.append(done)
                else:
                    moved += done
            return moved, buried
        finally:
            await scripts["unlock"](keys=[layout.unacked_mutex], args=[token])

    async def _one(
        self, client: Any, scripts: dict[str, Any], tag: bytes, score: bytes, value: bytes
    ) -> int | Buried:
        layout = self.layout
        parsed = _unacked(value)
        queues: list[str] = []
        item, index = value, 0
        if parsed is not None:
            message, exchange, routing_key = parsed
            envelope.mark_redelivered(message)
            queues = await self._route(client, exchange, routing_key)
            item = envelope.encode(message)
            index = layout.step_index(_kombu_priority(message))
        if queues:
            dead, wake, limit, reason = queues[0], queues[0], self.delivery_limit, "delivery_limit"
        else:  # not kombu's [envelope, exchange, routing key], or no queue to go to
            dead, wake, limit, reason = UNREADABLE, UNREADABLE, 0, "malformed"
            if value:
                logger.warning("unacked entry %r cannot be restored; dead-lettered", tag)
        done = await scripts["restore"](
            keys=[
                *layout.held,
                layout.dead(dead),
                layout.wake(wake),
                *(layout.list_key(queue, index) for queue in queues),
            ],
            args=[tag, score, value, item, limit, self.dead_max, index, reason],
        )
        if isinstance(done, bytes | str):  # the id of the dead letter it became
            return Buried(dead, done.decode() if isinstance(done, bytes) else done)
        return 1 if int(done) else 0

    async def _route(self, client: Any, exchange: str, routing_key: str) -> list[str]:
        if exchange:
            members = await client.smembers(self.layout.binding(exchange))
            bound = sorted(
                {
                    queue
                    for key, _, queue in map(self.layout.parse_binding, members)
                    if key == routing_key and queue
                }
            )
            if bound:
                return bound
        return [routing_key] if routing_key else []


def _unacked(value: bytes) -> tuple[dict[str, Any], str, str] | None:
    try:
        found = json.loads(value)
    except (UnicodeDecodeError, ValueError):
        return None
    if (
        isinstance(found, list)
        and len(found) == 3
        and isinstance(found[0], dict)
        and all(isinstance(part, str) for part in found[1:])
    ):
        return found[0], found[1], found[2]
    return None


def _kombu_priority(message: dict[str, Any]) -> int:
    """The priority kombu files a message under (0 when it has none)."""
    properties = message.get("properties")
    priority: Any = properties.get("priority") if isinstance(properties, dict) else None
    try:
        return max(0, min(int(priority), KOMBU_MAX_PRIORITY))
    except (TypeError, ValueError):
        return 0
