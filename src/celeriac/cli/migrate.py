"""``celeriac migrate SOURCE DEST``: move task messages from one broker to another.

Edge layer (cli). Messages are fetched from SOURCE's queues, published to DEST (the same
queue, or the one ``-Q src:dest`` names), and acked on SOURCE only once DEST holds them:
a crash in between leaves a copy on both, never none. Messages a ``--tasks`` filter skips
(and, with ``--copy``, every message) are given back to SOURCE at the end. Delayed
messages (a countdown or eta not reached) stay on SOURCE until they are due.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import click

from celeriac.app.broker_connection import broker_for_url
from celeriac.app.routing import declared_queues
from celeriac.app.urls import broker_url
from celeriac.brokers.base import Broker, Delivery, OutboundMessage
from celeriac.cli.base import CLIContext, CLIError
from celeriac.cli.worker import split_queues
from celeriac.config.conf import Settings
from celeriac.exceptions import BrokerConnectionError

BATCH = 100  # messages fetched per round trip
FOREVER_WAIT = 1.0  # --forever: the shortest wait per fetch (no busy loop with -t 0)


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
    held: list[Delivery] = field(default_factory=list)


def parse_queues(values: tuple[str, ...], default: list[str]) -> dict[str, str]:
    """``('a,b:c',)`` -> ``{'a': 'a', 'b': 'c'}``; no value: ``default``, each to itself."""
    queues: dict[str, str] = {}
    for item in split_queues(values) or default:
        source, _, dest = item.partition(":")
        if not source.strip():
            raise CLIError(f"-Q {item!r}: write a queue name, or SOURCE:DEST to rename it")
        queues[source.strip()] = dest.strip() or source.strip()
    return queues


async def run_migration(
    source: Broker, dest: Broker, plan: Migration, report: Callable[[str, str, int], None]
) -> Migration:
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
            for delivery in deliveries:
                await _move(source, dest, plan, delivery, report)
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


async def _move(
    source: Broker,
    dest: Broker,
    plan: Migration,
    delivery: Delivery,
    report: Callable[[str, str, int], None],
) -> None:
    message = source.wire_format.decode(delivery.payload)
    if plan.tasks and message.headers.get("task") not in plan.tasks:
        plan.skipped += 1
        plan.held.append(delivery)
        return
    queue = plan.queues.get(delivery.queue, delivery.queue)
    outbound = OutboundMessage(
        queue, dest.wire_format.encode(message), delivery.message_id, delivery.priority
    )
    await dest.publish_async(outbound)
    if plan.copy:
        plan.held.append(delivery)
    else:
        await delivery.ack()
    plan.moved += 1
    report(str(message.headers.get("task")), message.id, plan.moved)


_FAMILIES = {"rediss": "redis", "unix": "redis", "sentinel": "redis", "amqps": "amqp",
             "pyamqp": "amqp"}  # fmt: skip


def _family(url: str | None) -> str:
    scheme = urlsplit(url or "").scheme.lower()
    return _FAMILIES.get(scheme, scheme)


def _brokers(obj: CLIContext, source: str, dest: str) -> tuple[Broker, Broker, list[str]]:
    """Both brokers. With ``-A``, the app's broker settings (transport options, TLS)
    apply to the URL of the same kind as the app's broker; the other gets defaults."""
    conf = obj.load_app().conf if obj.app_spec else Settings()
    default = [str(q) for q in declared_queues(conf.task_queues)] or [conf.task_default_queue]
    plain = Settings()
    same = _family(broker_url(conf))
    brokers = [
        broker_for_url(conf if _family(url) == same else plain, url) for url in (source, dest)
    ]
    return brokers[0], brokers[1], default


@click.command("migrate", short_help="Move task messages from one broker to another.")
@click.argument("source")
@click.argument("destination")
@click.option("-n", "--limit", type=click.IntRange(min=1), help="Move at most N messages.")
@click.option(
    "-t", "--timeout", type=click.FloatRange(min=0), default=1.0, show_default=True,
    help="Stop when no message arrives for this many seconds.",
)  # fmt: skip
@click.option(
    "-a", "--ack-messages", is_flag=True,
    help="Remove the messages from SOURCE once DEST holds them (the default here).",
)  # fmt: skip
@click.option("--copy", is_flag=True, help="Leave the messages on SOURCE too (copy them).")
@click.option("-T", "--tasks", multiple=True, help="Only these task names, comma-separated.")
@click.option(
    "-Q", "--queues", multiple=True,
    help="Queues to move, comma-separated; SRC:DEST renames (default: the app's queues).",
)  # fmt: skip
@click.option("-F", "--forever", is_flag=True, help="Keep moving messages until interrupted.")
@click.pass_obj
def migrate_command(
    obj: CLIContext,
    /,
    source: str,
    destination: str,
    limit: int | None,
    timeout: float,
    ack_messages: bool,
    copy: bool,
    tasks: tuple[str, ...],
    queues: tuple[str, ...],
    forever: bool,
) -> None:
    """Move task messages from the broker at SOURCE to the broker at DESTINATION (URLs,
    e.g. redis://old-host/0 amqp://new-host//). Each message is acked on SOURCE only
    once DESTINATION holds it. Delayed messages stay on SOURCE until they are due. With
    -A, the app's broker settings apply to the URL of the same kind as its broker."""
    if copy and ack_messages:
        raise CLIError("--copy and --ack-messages contradict each other: give one of them")
    src, dest, default = _brokers(obj, source, destination)
    plan = Migration(
        parse_queues(queues, default), frozenset(split_queues(tasks)), limit, timeout, forever, copy
    )

    def report(name: str, task_id: str, count: int) -> None:
        total = f"/{limit}" if limit else ""
        click.echo(f"Migrating task {count}{total}: {name}[{task_id}]")

    try:
        asyncio.run(_migrate(src, dest, plan, report))
    except BrokerConnectionError as exc:
        raise CLIError(f"migrate stopped: {exc}") from exc
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
    finally:
        src.close()
        dest.close()
    _summary(src, plan)


async def _migrate(
    src: Broker, dest: Broker, plan: Migration, report: Callable[[str, str, int], None]
) -> None:
    try:
        await run_migration(src, dest, plan, report)
    finally:
        await src.close_async()
        await dest.close_async()


def _summary(src: Broker, plan: Migration) -> None:
    verb = "copied" if plan.copy else "moved"
    click.echo(f"{plan.moved} message(s) {verb}; {plan.skipped} skipped by --tasks.")
    delayed = _delayed(src, list(plan.queues))
    if delayed:
        click.echo(
            f"{delayed} delayed message(s) (countdown/eta) stay on SOURCE until due: run "
            f"migrate again then."
        )


def _delayed(src: Broker, queues: list[str]) -> int:
    try:
        return sum(src.delayed_count(queue) for queue in queues)
    except BrokerConnectionError:
        return 0
    finally:
        src.close()


__all__ = ["Migration", "migrate_command", "parse_queues", "run_migration"]
