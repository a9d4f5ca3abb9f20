"""``celeriac dead-letters list|show|replay|purge``: the messages a queue gave up on.

Edge layer (cli). Reads the broker's dead letters (``Broker.dead_letters``), replays them
to their queue with a fresh delivery count and their original task id (a caller waiting on
the result sees the replayed run), or drops them. Filters: ``--queue`` (default: every
known queue), ``--reason`` (a ``DeadLetterReason``), ``--limit`` (per queue).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import click

from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.cli.base import CLIContext, CLIError, CommandFailed
from celeriac.cli.ops import JSON_HELP, comma_list, echo_json
from celeriac.exceptions import CeleriacError

REASONS = click.Choice([reason.value for reason in DeadLetterReason])
DEFAULT_LIMIT = 100


@dataclass(frozen=True)
class Entry:
    """A dead letter with what its message says (when it can be read)."""

    letter: DeadLetter
    task: str | None
    task_id: str | None
    headers: dict[str, Any]

    def matches(self, ref: str) -> bool:
        return ref in (self.letter.entry_id, self.task_id, self.letter.message_id)

    def summary(self) -> dict[str, Any]:
        letter = self.letter
        return {
            "entry_id": letter.entry_id, "queue": letter.queue, "task": self.task,
            "id": self.task_id or letter.message_id, "reason": letter.reason.value,
            "detail": letter.detail, "delivery_count": letter.delivery_count,
            "dead_lettered_at": letter.dead_lettered_at, "priority": letter.priority,
        }  # fmt: skip

    def details(self) -> dict[str, Any]:
        return {
            **self.summary(),
            "argsrepr": self.headers.get("argsrepr"),
            "kwargsrepr": self.headers.get("kwargsrepr"),
            "headers": self.headers,
        }


def read_entries(app: Any, letters: Sequence[DeadLetter]) -> list[Entry]:
    """Each letter with its task name and id; a payload that cannot be decoded (why it may
    be here) is listed with neither."""
    entries = []
    for letter in letters:
        try:
            message = app.broker.wire_format.decode(letter.payload)
            headers = dict(message.headers)
        except Exception:  # malformed on purpose or by accident: still listed
            headers = {}
        task, task_id = headers.get("task"), headers.get("id")
        entries.append(Entry(letter, _text(task), _text(task_id), headers))
    return entries


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Selection:
    """What the filters chose, per queue."""

    queues: list[str]
    reason: str | None
    limit: int

    def entries(self, app: Any) -> list[Entry]:
        found: list[Entry] = []
        for queue in self.queues:
            try:
                letters = app.broker.dead_letters(queue, self.limit)
            except CeleriacError as exc:
                raise CommandFailed(f"could not read the dead letters of {queue}: {exc}") from exc
            found.extend(
                entry
                for entry in read_entries(app, letters)
                if self.reason is None or entry.letter.reason.value == self.reason
            )
        return found


def _selection(app: Any, queue: tuple[str, ...], reason: str | None, limit: int) -> Selection:
    if limit < 1:
        raise CLIError(f"--limit must be at least 1, not {limit}")
    return Selection(comma_list(queue) or sorted(app.amqp.queues), reason, limit)


def _filters(command: Any) -> Any:
    for option in reversed((
        click.option(
            "-Q", "--queue", multiple=True, metavar="QUEUE[,QUEUE]",
            help="Queues to look at (default: every known queue).",
        ),
        click.option("--reason", type=REASONS, help="Only dead letters with this reason."),
        click.option(
            "--limit", type=int, default=DEFAULT_LIMIT, show_default=True,
            help="At most this many per queue (the oldest first).",
        ),
        click.option("--json", "as_json", is_flag=True, help=JSON_HELP),
    )):  # fmt: skip
        command = option(command)
    return command


@click.group("dead-letters")
def dead_letters_group() -> None:
    """List, show, replay or purge dead letters (messages a queue gave up on)."""


@dead_letters_group.command("list")
@_filters
@click.pass_obj
def list_command(
    obj: CLIContext, queue: tuple[str, ...], reason: str | None, limit: int, as_json: bool
) -> None:
    """List dead letters, the oldest first."""
    app = obj.load_app()
    entries = _selection(app, queue, reason, limit).entries(app)
    if as_json:
        echo_json([entry.summary() for entry in entries])
        return
    if not entries:
        click.echo("No dead letters.")
        return
    for entry in entries:
        letter = entry.letter
        click.echo(
            f"{letter.entry_id}  {letter.queue}  {entry.task or '?'}[{entry.task_id or '?'}]  "
            f"{letter.reason.value}  x{letter.delivery_count}  {_when(letter)}  "
            f"{_short(letter.detail)}"
        )


@dead_letters_group.command("show")
@click.argument("refs", nargs=-1, required=True, metavar="ENTRY_OR_TASK_ID...")
@_filters
@click.pass_obj
def show_command(
    obj: CLIContext,
    refs: tuple[str, ...],
    queue: tuple[str, ...],
    reason: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show dead letters in full, named by entry id or task id."""
    app = obj.load_app()
    entries = _chosen(_selection(app, queue, reason, limit).entries(app), refs)
    if as_json:
        echo_json([entry.details() for entry in entries])
        return
    for entry in entries:
        for key, value in entry.details().items():
            if key == "dead_lettered_at":
                value = _when(entry.letter)
            if key != "headers":
                click.echo(f"{key + ':':<17} {value}")
        click.echo("")


@dead_letters_group.command("replay")
@click.argument("refs", nargs=-1, metavar="[ENTRY_OR_TASK_ID]...")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter selected.")
@_filters
@click.pass_obj
def replay_command(
    obj: CLIContext,
    refs: tuple[str, ...],
    replay_all: bool,
    queue: tuple[str, ...],
    reason: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Send dead letters back to their queue, with a fresh delivery count and their
    original task id. Name them, or pass --all (with the filters) for every one."""
    if bool(refs) == replay_all:
        raise CLIError("name the dead letters to replay (entry or task ids), or pass --all")
    app = obj.load_app()
    entries = _selection(app, queue, reason, limit).entries(app)
    chosen = _chosen(entries, refs) if refs else entries
    replayed: dict[str, int] = {}
    for name in sorted({entry.letter.queue for entry in chosen}):
        ids = [entry.letter.entry_id for entry in chosen if entry.letter.queue == name]
        try:
            replayed[name] = app.broker.replay_dead_letters(name, ids)
        except CeleriacError as exc:
            raise CommandFailed(f"could not replay dead letters of {name}: {exc}") from exc
    total = sum(replayed.values())
    if as_json:
        echo_json({"replayed": total, "queues": replayed})
    else:
        click.echo(f"Replayed {total} dead letter(s)" + "".join(
            f"\n  {name}: {count}" for name, count in replayed.items()
        ))  # fmt: skip


@dead_letters_group.command("purge")
@click.option(
    "-Q", "--queue", multiple=True, metavar="QUEUE[,QUEUE]",
    help="Queues whose dead letters to drop (default: every known queue).",
)  # fmt: skip
@click.option("-f", "--force", is_flag=True, help="Don't prompt for verification.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def purge_command(obj: CLIContext, queue: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Drop every dead letter of the queues. There is no undo."""
    app = obj.load_app()
    names = comma_list(queue) or sorted(app.amqp.queues)
    if not force:
        click.confirm(
            f"Drop every dead letter of {', '.join(names)}? There is no undo "
            "(to skip this prompt use the -f option).",
            abort=True,
        )
    try:
        purged = {name: app.broker.purge_dead_letters(name) for name in names}
    except CeleriacError as exc:
        raise CommandFailed(f"could not purge dead letters: {exc}") from exc
    total = sum(purged.values())
    if as_json:
        echo_json({"purged": total, "queues": purged})
    else:
        click.echo(f"Purged {total} dead letter(s)" + "".join(
            f"\n  {name}: {count}" for name, count in purged.items()
        ))  # fmt: skip


def _chosen(entries: list[Entry], refs: Sequence[str]) -> list[Entry]:
    """The entries named by ``refs``; a name that matches none is an error."""
    chosen = [entry for entry in entries if any(entry.matches(ref) for ref in refs)]
    missing = [ref for ref in refs if not any(entry.matches(ref) for entry in entries)]
    if missing:
        raise CLIError(
            f"no dead letter {', '.join(missing)} among those selected: check the id "
            f"('celeriac dead-letters list'), --queue, --reason or --limit"
        )
    return chosen


def _when(letter: DeadLetter) -> str:
    when = dt.datetime.fromtimestamp(letter.dead_lettered_at, dt.timezone.utc)
    return when.isoformat(timespec="seconds")


def _short(text: str, size: int = 80) -> str:
    line = text.replace("\n", " ")
    return line if len(line) <= size else line[: size - 3] + "..."


__all__ = ["dead_letters_group", "read_entries"]
