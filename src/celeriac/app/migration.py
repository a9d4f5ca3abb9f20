"""Moving task messages from one broker to another: what ``celeriac migrate`` and
``celeriac.contrib.migrate.migrate_tasks`` both run.

App layer: imports the broker seam and ``app.broker_connection``. Messages are fetched
from the source's queues, published to the destination (the same queue, or the one a
rename names), and acked on the source only once the destination holds them: a crash in
between leaves a copy on both, never none. Messages a task filter skips (and, when
copying, every message) are given back to the source at the end. Delayed messages (a
countdown or eta not reached) stay on the source until they are due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from celeriac.app.broker_connection import broker_for_url
from celeriac.app.routing import declared_queues
from celeriac.app.urls import broker_url
from celeriac.brokers.base import Broker, DeadLetterReason, Delivery, OutboundMessage
from celeriac.config.conf import Settings
from celeriac.exceptions import BrokerConnectionError, DecodeError
from celeriac.messages.envelope import Message

BATCH = 100  # messages fetched per round trip
FOREVER_WAIT = 1.0  # forever: the shortest wait per fetch (no busy loop with a 0 timeout)

Report = Callable[[str, str, int], None]  # (task name, task id, messages moved so far)


@dataclass
class Migration:
    """What one run moves: queue renames (source -> destination), a task-name filter."""

    queues: dict[str, str]
    tasks: frozenset[str] = frozenset()
    limit: int | None = None
    timeout: float = 1.0
    forever: bool = False
    copy: bool = False
    moved: int = 0
    skipped: int = 0
    dead_lettered: int = 0  # messages that could not be read: dead-lettered on the source
    held: list[Delivery] = field(default_factory=list)


def split_names(values: Iterable[str]) -> list[str]:
    """``('a,b', ' c ')`` -> ``['a', 'b', 'c']``: commas and repeated values both work."""
    names: list[str] = []
    for value in values:
        for name in value.split(","):
            if (name := name.strip()) and name not in names:
                names.append(name)
    return names


def parse_queues(values: Iterable[str], default: list[str]) -> dict[str, str]:
    """``('a,b:c',)`` -> ``{'a': 'a', 'b': 'c'}``; no value: ``default``, each to itself.
    Raises ``ValueError`` for an entry without a source queue."""
    queues: dict[str, str] = {}
    for item in split_names(values) or default:
        source, _, dest = item.partition(":")
        if not source.strip():
            raise ValueError(f"{item!r}: write a queue name, or SOURCE:DEST to rename it")
        queues[source.strip()] = dest.strip() or source.strip()
    return queues


_FAMILIES = {"rediss": "redis", "unix": "redis", "sentinel": "redis", "redis+cluster": "redis",
             "rediss+cluster": "redis", "amqps": "amqp", "pyamqp": "amqp"}  # fmt: skip


def _family(url: str | None) -> str:
    scheme = urlsplit(url or "").scheme.lower()
    return _FAMILIES.get(scheme, scheme)


def broker_for(conf: Any, url: str) -> Broker:
    """The broker at ``url``: with ``conf``'s broker settings (transport options, TLS)
    when it is of the same kind as ``conf``'s broker, else with the defaults."""
    same = _family(url) == _family(broker_url(conf))
    return broker_for_url(conf if same else Settings(), url)


def brokers_for(conf: Any, source: str, dest: str) -> tuple[Broker, Broker]:
    return broker_for(conf, source), broker_for(conf, dest)


def default_queues(conf: Any) -> list[str]:
    """The queues moved when none are named: ``task_queues``, else the default queue."""
    return [str(q) for q in declared_queues(conf.task_queues)] or [conf.task_default_queue]


def migrate(source: Broker, dest: Broker, plan: Migration, report: Report) -> Migration:
    """Run ``plan`` to its end from synchronous code, then close both brokers."""

    async def run() -> None:
        try:
            await run_migration(source, dest, plan, report)
        finally:
            await source.close_async()
            await dest.close_async()

    try:
        asyncio.run(run())
    finally:
        source.close()
        dest.close()
    return plan


async def run_migration(source: Broker, dest: Broker, plan: Migration, report: Report) -> Migration:
    """Move messages until none comes within ``plan.timeout`` (never, with ``forever``)
    or ``plan.limit`` were moved. ``report(task_name, task_id, count)`` per message."""
    # Held messages (skipped, or copied) keep their leases renewed, as a worker's are,
    # so they are not handed out again while the run goes on.
    renew_every = source.lease_seconds / 3
    renewed = time.monotonic()
    wait = max(plan.timeout, FOREVER_WAIT) if plan.forever else plan.timeout
    try:
        while plan.limit is None or plan.moved < plan.limit:
            want = BATCH if plan.limit is None else min(BATCH, plan.limit - plan.moved)
            deliveries = await source.fetch(list(plan.queues), want, wait)
            copied = [
                (delivery, message)
                for delivery in deliveries
                if (message := await _copy(source, dest, plan, delivery)) is not None
            ]
            await dest.flush_async()  # the destination holds every copy before a source ack
            for delivery, message in copied:
                await _settle(plan, delivery, message, report)
            if plan.held and time.monotonic() - renewed > renew_every:
                await source.extend(plan.held)
                renewed = time.monotonic()
            if not deliveries and not plan.forever:
                break
    finally:
        for delivery in plan.held:  # skipped or copied: back where they were, uncounted
            await delivery.requeue()
        await source.stop_fetching()
    return plan


async def _copy(
    source: Broker, dest: Broker, plan: Migration, delivery: Delivery
) -> Message | None:
    """Publish ``delivery``'s message to the destination; None when the plan skips it,
    or when it cannot be read (then it is dead-lettered on the source with the reason,
    as a worker would: never moved, never lost, and the run goes on)."""
    try:
        message = source.wire_format.decode(delivery.payload)
    except DecodeError as exc:
        await delivery.dead_letter(DeadLetterReason.MALFORMED, str(exc))
        plan.dead_lettered += 1
        return None
    if plan.tasks and message.headers.get("task") not in plan.tasks:
        plan.skipped += 1
        plan.held.append(delivery)
        return None
    queue = plan.queues.get(delivery.queue, delivery.queue)
    outbound = OutboundMessage(
        queue, dest.wire_format.encode(message), delivery.message_id, delivery.priority
    )
    await dest.publish_async(outbound)
    return message


async def _settle(plan: Migration, delivery: Delivery, message: Message, report: Report) -> None:
    """The copy is stored: ack the source's message (or hold it, copying)."""
    if plan.copy:
        plan.held.append(delivery)
    else:
        await delivery.ack()
    plan.moved += 1
    report(str(message.headers.get("task")), message.id, plan.moved)


def delayed_count(source: Broker, queues: Iterable[str]) -> int:
    """Messages waiting on ``source`` for their countdown or eta (0 if it cannot say):
    those of ``queues``, or every queue's where the broker counts them together."""
    names = list(queues)
    if not source.delays_counted_per_queue:
        names = names[:1]
    try:
        return sum(source.delayed_count(queue) for queue in names)
    except BrokerConnectionError:
        return 0
    finally:
        source.close()


__all__ = [
    "Migration",
    "broker_for",
    "brokers_for",
    "default_queues",
    "delayed_count",
    "migrate",
    "parse_queues",
    "run_migration",
    "split_names",
]
