"""How an idle fetch waits on Redis: a mixin of ``RedisBroker``, kept apart so the
broker module stays small.

On one server (or when a fetch's streams share one cluster slot) the wait is a blocking
``XREADGROUP`` as the queue group's consumer, over the ready streams and the wake
stream: a message that arrives is handed out by that read itself, one round trip from
publish to hand-out, as a blocking pop would be. Redis serves the readers blocked on a
stream first come, first served, so each message wakes one worker, not all of them. An
entry on the wake stream (a delayed message was published) ends the wait, so the next
fetch re-plans it around the new due time; one idle consumer wakes for it, which is all
the promotion needs.

A read that the caller abandons (cancelled) closes its connection; a message Redis
handed out to it in that instant is taken back by a fetch once its lease runs out, as
after a crash. The worker never cancels its fetches: it stops asking and lets the last
one end (``FETCH_WAIT``).

Across cluster slots one read cannot span the streams: the wait is one plain ``XREAD``
per slot (``_wait_slots``), and the fetch that follows hands out what arrived.

A wait that handed out messages leaves its plan standing (``Plan``): what the fetch
script that found the queue empty said about it (when the next delayed message is due,
whether leases may need taking back), good until then and for at most a housekeeping
period. The fetches that follow go straight back to the blocking read, which hands out at
once whatever arrived meanwhile, instead of paying a fetch script each to learn what the
plan already says. News on the wake stream (a delayed message was published) ends the
plan: the next fetch asks the script again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import redis

from celeriac.brokers.base import Delivery
from celeriac.brokers.redis.entries import (
    deliveries_before,
    flaw,
    priority_field,
    read_dead_letter,
)
from celeriac.brokers.redis.entries import text as _text
from celeriac.brokers.redis.keys import GROUP, LEVELS, priority_of

PRUNE_EVERY = 60.0  # seconds between prunings of a group's idle consumers
PLAN_MARGIN = 0.002  # a plan this close to its end is over (a wait shorter than a ms is none)


@dataclass(frozen=True)
class Plan:
    """How a queue found empty by a housekeeping fetch may be waited on, until ``until``
    (loop time): its wait (as the fetch script returned it) and when its next delayed
    message is due (loop time, or None)."""

    wait: list[Any]
    due: float | None
    until: float

    @classmethod
    def of(cls, wait: list[Any], now: float, period: float) -> Plan:
        """Good until the next due time, and for the housekeeping ``period`` at most (a
        quarter lease at most, so a lease that lapses meanwhile is taken back in time)."""
        due = now + int(wait[0]) / 1000 if int(wait[0]) >= 0 else None
        until = now + period if due is None else min(now + period, due)
        return cls(wait, due, until)

    def wait_at(self, now: float) -> list[Any]:
        """The wait as the fetch script would say it at ``now``."""
        due = -1 if self.due is None else max(0, int((self.due - now) * 1000))
        return [due, *self.wait[1:]]


class RedisWaits:
    """The idle wait of ``RedisBroker.fetch`` (attributes are the broker's)."""

    async def _prune(self: Any, names: list[str]) -> None:
        """At most once a minute, while idle: forget consumers of dead workers."""
        now = asyncio.get_running_loop().time()
        if now - self._pruned_at < PRUNE_EVERY:
            return
        self._pruned_at = now
        scripts = self._aclient()[1]
        idle_ms = int(self.consumer_prune_idle * 1000)
        for queue in names:
            keys = self.keys(queue)
            with self._guard():
                await scripts["prune"](keys=[*keys.streams, keys.wake], args=[GROUP, idle_ms])

    def _planned(self: Any, names: list[str], now: float) -> dict[str, list[Any]] | None:
        """The waits the standing plans give for ``names``, or None when one has none (or
        it ran out): the fetch asks the script then."""
        waits = {}
        for queue in names:
            plan = self._plans.get(queue)
            if plan is None or now >= plan.until - PLAN_MARGIN:
                self._plans.pop(queue, None)
                return None
            waits[queue] = plan.wait_at(now)
        return waits

    async def _wait(
        self: Any, names: list[str], waits: dict[str, list[Any]], remaining: float, limit: int
    ) -> list[Delivery]:
        """Block until a new entry arrives, a delayed message is due, or a lease may lapse;
        the messages the wait itself handed out (up to ``limit``), if any."""
        await self._prune(names)
        client = self._aclient()[0]
        block = remaining
        streams: dict[str, str] = {}
        ready: dict[str, tuple[str, int]] = {}  # ready stream -> its queue, 1-based index
        for queue in names:
            wait = waits.get(queue)
            if not wait:
                return []  # this queue was not read in this round: read again at once
            keys = self.keys(queue)
            if int(wait[0]) >= 0:
                block = min(block, int(wait[0]) / 1000)
            if int(wait[1]):
                block = min(block, max(0.05, self.lease_seconds / 4))  # reap in time
            # From the ids the fetch saw: anything added since then wakes us at once.
            for key, last in zip([*keys.streams, keys.wake], wait[2:], strict=True):
                streams[key] = _text(last)
            ready.update((key, (queue, index)) for index, key in enumerate(keys.streams, 1))
        if self._block_cap is not None:
            block = min(block, self._block_cap)
        if block <= 0:
            return []
        slots = self._target.slot_groups(streams)
        if len(slots) == 1:  # one server (or one slot): one read over every stream
            handed: list[Delivery] = await self._read_ready(
                client, list(streams), ready, limit, block
            )
            return handed
        for queue in names:  # XREAD reads from the ids a fetch saw: each wait needs one
            self._plans.pop(queue, None)
        with self._guard():
            await self._wait_slots(client, streams, slots, block)
        return []

    async def _read_ready(
        self: Any,
        client: Any,
        streams: list[str],
        ready: dict[str, tuple[str, int]],
        limit: int,
        block: float,
    ) -> list[Delivery]:
        """The blocking read as the group's consumer: what it handed out, checked."""
        ms = max(1, int(block * 1000))
        with self._guard():
            try:
                reply = await client.xreadgroup(
                    GROUP, self.consumer, dict.fromkeys(streams, ">"), count=limit, block=ms
                )
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                # A wake stream from before this read existed, or a stream deleted by
                # hand: make the groups; the caller fetches again at once.
                await _create_groups(client, streams, ready)
                return []
        entries = reply.items() if isinstance(reply, dict) else (reply or [])
        admitted: list[tuple[int, Delivery]] = []
        woken: dict[str, list[Any]] = {}
        for stream, rows in entries:
            key = _text(stream)
            if key not in ready:  # the wake stream: nothing to hand out, only news
                woken[key] = [entry_id for entry_id, _ in rows]
                self._plans.clear()  # a delayed message came: its due time is not planned
                continue
            queue, index = ready[key]
            for entry_id, fields in rows:
                delivery = await self._admit(queue, key, index, entry_id, fields or {})
                if delivery is not None:
                    admitted.append((index, delivery))
        if woken:
            with self._guard():  # (an entry left in a pending list would stay forever)
                for key, ids in woken.items():
                    await client.xack(key, GROUP, *ids)
        # Streams of several levels (or queues) had news at once: highest level first, and
        # no more than asked; the rest go back as if never handed out.
        admitted.sort(key=lambda pair: pair[0])
        deliveries = [delivery for _, delivery in admitted]
        self._batch().out += len(deliveries)
        for delivery in deliveries[limit:]:
            await self.requeue(delivery)
        return deliveries[:limit]

    async def _admit(
        self: Any, queue: str, stream: str, index: int, entry_id: Any, fields: dict[bytes, Any]
    ) -> Delivery | None:
        """A delivery for an entry the read handed out, or None for one other software
        wrote that cannot be run: it goes to the dead letters, as a fetch would do."""
        level = LEVELS - index
        why = flaw(fields)
        if why is not None:
            scripts = self._aclient()[1]
            with self._guard():
                moved = await scripts["refuse"](
                    keys=[stream, self.keys(queue).dead],
                    args=[GROUP, self.consumer, entry_id, why, self.dead_letter_max, level],
                )
            if moved:
                dead_id, flat = moved
                letter = {bytes(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}
                self._hand_back(read_dead_letter(queue, dead_id, letter))
            return None
        priority = priority_field(fields)
        return Delivery(
            broker=self,
            queue=queue,
            payload=bytes(fields[b"p"]),
            message_id=_text(fields[b"m"]),
            delivery_count=1 + deliveries_before(fields),
            priority=priority if priority >= 0 else priority_of(level),
            token=f"{stream}|{_text(entry_id)}|1",
        )

    async def _wait_slots(
        self: Any, client: Any, streams: dict[str, str], slots: list[list[str]], block: float
    ) -> None:
        """On a cluster one XREAD takes the streams of one slot only: wait on one read per
        slot, until the first returns or ``block`` passes.

        A read still out when the wait ends is not cancelled (redis-py's cluster client can
        lose a cancel during a connect, and a cancelled read closes its connection): the
        next wait on the same streams waits on it instead of sending another, which is as
        good, since it reads from older ids and nothing newer has arrived while it is out.
        It ends by itself within its own block time."""
        reads = self._reads.setdefault(asyncio.get_running_loop(), {})
        ms = max(1, int(block * 1000))
        waiting = []
        for keys in slots:
            group = tuple(keys)
            read = reads.get(group)
            if read is None or read.done():
                read = reads[group] = asyncio.ensure_future(
                    client.xread({key: streams[key] for key in keys}, count=1, block=ms)
                )
                read.add_done_callback(settled)
            waiting.append(read)
        done, _ = await asyncio.wait(waiting, timeout=block, return_when=asyncio.FIRST_COMPLETED)
        for read in done:
            error = None if read.cancelled() else read.exception()
            if error is not None:
                raise error


async def _create_groups(client: Any, streams: list[str], ready: dict[str, Any]) -> None:
    """The consumer group on every stream of a read that lacks it: a ready stream's from
    its start (nothing in it was handed out yet), a wake stream's from now."""
    for key in streams:
        try:
            await client.xgroup_create(key, GROUP, id="0" if key in ready else "$", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise


def settled(read: asyncio.Future[Any]) -> None:
    """A wait's read ended, seen or not: its error is collected (a wait that still looks
    at it raises it), so asyncio never reports it as never retrieved."""
    if not read.cancelled():
        read.exception()
