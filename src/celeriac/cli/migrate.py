"""``celeriac migrate SOURCE DEST``: move task messages from one broker to another.

Edge layer (cli): the options and the output; ``celeriac.app.migration`` does the moving
(acked on SOURCE only once DEST holds each message), as ``migrate_tasks`` does in Python.
"""

from __future__ import annotations

import click

from celeriac.app.migration import (
    Migration,
    brokers_for,
    default_queues,
    delayed_count,
    migrate,
    parse_queues,
    split_names,
)
from celeriac.brokers.base import Broker
from celeriac.cli.base import CLIContext, CLIError
from celeriac.config.conf import Settings
from celeriac.exceptions import BrokerConnectionError

# Options ``migrate`` and ``migrate-queue`` share.
limit_option = click.option(
    "-n", "--limit", type=click.IntRange(min=1), help="Move at most N messages."
)
timeout_option = click.option(
    "-t", "--timeout", type=click.FloatRange(min=0), default=1.0, show_default=True,
    help="Stop when no message arrives for this many seconds.",
)  # fmt: skip


@click.command("migrate", short_help="Move task messages from one broker to another.")
@click.argument("source")
@click.argument("destination")
@limit_option
@timeout_option
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
    conf = obj.load_app().conf if obj.app_spec else Settings()
    try:
        renames = parse_queues(queues, default_queues(conf))
    except ValueError as exc:
        raise CLIError(f"-Q {exc}") from exc
    src, dest = brokers_for(conf, source, destination)
    plan = Migration(renames, frozenset(split_names(tasks)), limit, timeout, forever, copy)

    def report(name: str, task_id: str, count: int) -> None:
        total = f"/{limit}" if limit else ""
        click.echo(f"Migrating task {count}{total}: {name}[{task_id}]")

    try:
        migrate(src, dest, plan, report)
    except BrokerConnectionError as exc:
        raise CLIError(f"migrate stopped: {exc}") from exc
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
    _summary(src, plan)


def _summary(src: Broker, plan: Migration) -> None:
    verb = "copied" if plan.copy else "moved"
    click.echo(f"{plan.moved} message(s) {verb}; {plan.skipped} skipped by --tasks.")
    if plan.dead_lettered:
        click.echo(
            f"{plan.dead_lettered} message(s) could not be read: dead-lettered on SOURCE with "
            f"the reason (celeriac dead-letters list)."
        )
    delayed = delayed_count(src, list(plan.queues))
    if delayed:
        click.echo(
            f"{delayed} delayed message(s) (countdown/eta) stay on SOURCE until due: run "
            f"migrate again then."
        )


__all__ = ["migrate_command"]
