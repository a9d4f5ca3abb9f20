"""``celeriac migrate-queue --from URL --to URL``: move the messages queued in Celery's wire
format into celeriac's own, the last step of a move from Celery (docs/migrating-from-celery.md).

Edge layer (cli): the options and the report; ``celeriac.migrate`` does the moving (each
message acked on the source only once the target holds it).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import click

from celeriac.app.migration import default_queues, parse_queues
from celeriac.cli.base import CLIContext, CLIError, CommandFailed
from celeriac.cli.migrate import limit_option, timeout_option
from celeriac.cli.ops import JSON_HELP, echo_json
from celeriac.config.conf import Settings
from celeriac.exceptions import ImproperlyConfigured
from celeriac.migrate import FORMATS, MovePlan, QueueTally, Tally, check_urls, move, open_sides


def parse_options(values: Iterable[str], flag: str) -> dict[str, Any]:
    """``('global_keyprefix=proj:', 'visibility_timeout=60')`` -> a dict: a value that
    reads as JSON is taken as JSON (numbers, true/false), else as text."""
    options: dict[str, Any] = {}
    for item in values:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"{flag} {item!r}: write KEY=VALUE, e.g. {flag} global_keyprefix=proj:")
        try:
            options[key.strip()] = json.loads(text)
        except ValueError:
            options[key.strip()] = text
    return options


@click.command("migrate-queue", short_help="Move Celery-format messages into celeriac's format.")
@click.option("--from", "source", required=True, metavar="URL", help="The broker to read from.")
@click.option("--to", "target", required=True, metavar="URL", help="The broker to write to.")
@click.option(
    "--from-format", type=click.Choice(FORMATS), default="celery", show_default=True,
    help="How the source's messages are written: Celery's task messages, or celeriac's own.",
)  # fmt: skip
@click.option(
    "-Q", "--queue", "queues", multiple=True, metavar="QUEUE[:TARGET]",
    help="Queues to move, comma-separated or repeated; SRC:DEST moves SRC's messages into "
    "DEST (default: the app's queues).",
)  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Read and count the messages; move nothing.")
@limit_option
@timeout_option
@click.option(
    "--from-option", "from_options", multiple=True, metavar="KEY=VALUE",
    help="A transport option of the source (e.g. global_keyprefix=proj:), over the app's.",
)  # fmt: skip
@click.option(
    "--to-option", "to_options", multiple=True, metavar="KEY=VALUE",
    help="A transport option of the target (e.g. key_prefix=proj), over the app's.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def migrate_queue_command(
    obj: CLIContext,
    /,
    source: str,
    target: str,
    from_format: str,
    queues: tuple[str, ...],
    dry_run: bool,
    limit: int | None,
    timeout: float,
    from_options: tuple[str, ...],
    to_options: tuple[str, ...],
    as_json: bool,
) -> None:
    """Move the task messages queued at --from in Celery's wire format (kombu+redis:// or
    amqp://) into celeriac's own format at --to (redis:// or amqp://), keeping each
    message's id, arguments, eta, expiry, retries, priority and links. Each message is
    acked on the source only once the target holds it. A message that cannot be read is
    left on the source and reported. Exits with status 1 when any message is left behind
    (in a dry run: would be)."""
    app = obj.early_app()
    if app is None and obj.app_spec:
        obj.load_app()  # raises the reason it does not load
    conf = app.conf if app is not None else Settings()
    try:
        renames = parse_queues(queues, default_queues(conf))
        check_urls(source, target, from_format, renames)
        sides = open_sides(
            conf, source, target, from_format,
            parse_options(from_options, "--from-option"), parse_options(to_options, "--to-option"),
        )  # fmt: skip
    except (ValueError, ImproperlyConfigured) as exc:
        raise CLIError(str(exc)) from exc
    plan = MovePlan(renames, limit, timeout, dry_run, conf.task_message_max_size)
    try:
        tally = move(sides, plan)
    except KeyboardInterrupt:
        raise CommandFailed("interrupted: the messages not yet moved stay on the source") from None
    if as_json:
        echo_json(as_document(tally))
    else:
        for line in report_lines(tally):
            click.echo(line)
    if tally.stopped:
        raise CommandFailed(f"migrate-queue stopped: {tally.stopped}")
    if dry_run and tally.skipped:
        raise CommandFailed(f"{tally.skipped} message(s) would be left behind (see above)")
    if not dry_run and (tally.skipped or tally.on_source):
        raise CommandFailed(
            f"messages stay on the source: {tally.skipped} left behind, {tally.on_source} "
            f"in its queues now (see above)"
        )


# -- the report -------------------------------------------------------------------------------
def report_lines(tally: Tally) -> list[str]:
    moved = "would move" if tally.dry_run else "moved"
    lines = ["Dry run: nothing was moved."] if tally.dry_run else []
    for queue in tally.queues.values():
        lines.append(_queue_line(queue, moved))
        for problem in queue.problems:
            lines.append(f"  left behind: {problem.message_id or '?'} "
                         f"({problem.reason.value}: {problem.detail})")  # fmt: skip
        hidden = queue.skipped_total - len(queue.problems)
        if hidden > 0:
            lines.append(f"  ... and {hidden} more")
        if queue.delayed_on_source:
            lines.append(
                f"  {queue.delayed_on_source} delayed message(s) wait on the source until "
                f"due: run migrate-queue again then"
            )
    total = f"{tally.moved} message(s) {moved}, {tally.skipped} left behind."
    lines.append(f"Total: {total}")
    if tally.not_given_back:
        lines.append(
            f"{tally.not_given_back} message(s) could not be given back now (the source did "
            f"not answer): the source hands them out again once their lease ends."
        )
    return lines


def _queue_line(queue: QueueTally, moved: str) -> str:
    route = queue.source if queue.source == queue.target else f"{queue.source} -> {queue.target}"
    text = f"{route}: {queue.moved} {moved}"
    if queue.waiting_for_eta:
        text += f" ({queue.waiting_for_eta} to wait on the target until their eta)"
    if queue.skipped_total:
        reasons = ", ".join(f"{n} {reason.value}" for reason, n in sorted(queue.skipped.items()))
        text += f", {queue.skipped_total} left behind ({reasons})"
    if queue.on_target is not None:
        text += f"; the target queue holds {queue.on_target} now"
    if queue.on_source is not None:
        text += f"; the source queue holds {queue.on_source} now"
    return text


def as_document(tally: Tally) -> dict[str, Any]:
    return {
        "dry_run": tally.dry_run,
        "moved": tally.moved,
        "skipped": tally.skipped,
        "delayed_on_source": tally.delayed_on_source,
        "on_source": tally.on_source,
        "not_given_back": tally.not_given_back,
        "stopped": tally.stopped,
        "queues": [
            {
                "source": queue.source,
                "target": queue.target,
                "moved": queue.moved,
                "waiting_for_eta": queue.waiting_for_eta,
                "skipped": {reason.value: n for reason, n in queue.skipped.items()},
                "problems": [
                    {"id": p.message_id, "reason": p.reason.value, "detail": p.detail}
                    for p in queue.problems
                ],
                "delayed_on_source": queue.delayed_on_source,
                "on_target": queue.on_target,
                "on_source": queue.on_source,
            }
            for queue in tally.queues.values()
        ],
    }


__all__ = ["as_document", "migrate_queue_command", "parse_options", "report_lines"]
