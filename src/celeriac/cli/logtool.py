"""``celeriac logtool``: Celery's reader of worker log files, for celeriac's log lines.

Edge layer (cli); reads text only (no app, no broker). A record starts with the default
``worker_log_format`` prefix (``[2026-01-31 12:00:00,000: INFO/MainProcess] ...``); lines
that do not are the rest of the record above (a traceback). The worker's own lines say
what became of each task: ``Task NAME[ID] received``, then one ending: ``succeeded in``
(or ``already succeeded``, ``is a second copy``), or ``raised``, ``retry``, ``revoked``,
``expired``, which count as errors (a task's last ending decides).
"""

from __future__ import annotations

import fileinput
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import click

RECORD_START = re.compile(r"\[\d{4}-\d\d-\d\d ")
TASK_LINE = re.compile(r"\[[^\]]*\] Task (?P<name>[^\s\[]+)\[(?P<id>[^\]]+)\] (?P<rest>.*)")
RECEIVED = "received"
SUCCESSES = ("succeeded", "already succeeded", "is a second copy")
FAILURES = ("raised", "retry", "revoked", "expired")

Echo = Callable[[str], None]


@dataclass
class Audit:
    """What a log says about tasks: fed record by record, with callbacks for the commands."""

    on_error: Echo | None = None  # an ending that is not a success: its first line
    on_trace: Echo | None = None  # a record that goes on over more lines: all of it
    on_debug: Echo | None = None  # any other record: its first line
    received: dict[str, str] = field(default_factory=dict)  # id -> task name, in order
    ended: dict[str, str] = field(default_factory=dict)  # id -> the ending's words
    types: Counter[str] = field(default_factory=Counter)

    def run(self, files: Iterable[str]) -> Audit:
        """Read ``files`` (standard input when there are none)."""
        with fileinput.input(list(files), encoding="utf-8", errors="replace") as lines:
            for record in records(lines):
                self.feed(record)
        return self

    def feed(self, record: list[str]) -> None:
        first = record[0]
        if len(record) > 1 and self.on_trace:
            self.on_trace("\n".join(record))
        match = TASK_LINE.match(first)
        rest = match["rest"] if match else ""
        if match and rest == RECEIVED:
            if match["id"] not in self.received:  # a redelivery is the same task
                self.received[match["id"]] = match["name"]
                self.types[match["name"]] += 1
        elif match and rest.startswith(SUCCESSES):
            self.ended[match["id"]] = rest
        elif match and rest.startswith(FAILURES):
            self.ended[match["id"]] = rest
            if self.on_error:
                self.on_error(first)
        elif self.on_debug:
            self.on_debug(first)

    def incomplete(self) -> list[str]:
        """Ids received and never ended, in the order they were received."""
        return [task_id for task_id in self.received if task_id not in self.ended]

    @property
    def errors(self) -> int:
        """Tasks whose last ending is a failure (a retry that then succeeded is not)."""
        return sum(1 for rest in self.ended.values() if rest.startswith(FAILURES))

    def report(self) -> str:
        completed = len(self.ended)
        tasks = "\n".join(f"{name}: {count}" for name, count in self.types.most_common())
        return (
            f"\nReport\n======\nTask total: {len(self.received)}\nTask errors: {self.errors}\n"
            f"Task success: {completed - self.errors}\nTask completed: {completed}\n"
            f"Tasks\n=====\n{tasks}\n"
        )


def records(lines: Iterable[str]) -> Iterator[list[str]]:
    """Log records: each starting line with the lines after it that do not start one."""
    record: list[str] = []
    for raw in lines:
        line = raw.rstrip("\n")
        if RECORD_START.match(line) or not record:
            if record:
                yield record
            record = [line]
        else:
            record.append(line)
    if record:
        yield record


FILES = click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))


@click.group("logtool", short_help="Read worker log files.")
def logtool_group() -> None:
    """Read worker log files (standard input when no FILE is given)."""


@logtool_group.command("stats")
@FILES
def stats(files: tuple[str, ...]) -> None:
    """Count the tasks received, completed and failed, and each task's name."""
    click.echo(Audit().run(files).report())


@logtool_group.command("traces")
@FILES
def traces(files: tuple[str, ...]) -> None:
    """Print the records that carry a traceback (or other lines after their first)."""
    Audit(on_trace=click.echo).run(files)


@logtool_group.command("errors")
@FILES
def errors(files: tuple[str, ...]) -> None:
    """Print the lines of tasks that raised, retried, were revoked or expired."""
    Audit(on_error=click.echo).run(files)


@logtool_group.command("incomplete")
@FILES
def incomplete(files: tuple[str, ...]) -> None:
    """Print the ids of tasks received and never finished."""
    for task_id in Audit().run(files).incomplete():
        click.echo(f"Did not complete: {task_id}")


@logtool_group.command("debug")
@FILES
def debug(files: tuple[str, ...]) -> None:
    """Print the records that are not about a task's reception or ending."""
    Audit(on_debug=click.echo).run(files)


__all__ = ["Audit", "logtool_group", "records"]
