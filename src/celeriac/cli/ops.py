"""``celeriac purge``, ``celeriac call`` and ``celeriac result``: Celery's commands and flags.

Edge layer (cli). ``purge`` empties queues (ready and delayed messages; dead letters are
``celeriac dead-letters purge``), ``call`` sends a task by name and prints its id,
``result`` prints a task's return value or traceback. Each takes ``--json`` for scripts.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError, CommandFailed
from celeriac.exceptions import BrokerError, CeleriacError

JSON_HELP = "Print one JSON document instead of text."


def comma_list(values: Iterable[str]) -> list[str]:
    """``('a,b', 'c')`` -> ``['a', 'b', 'c']``: a COMMA SEPARATED LIST, repeatable."""
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def echo_json(document: Any) -> None:
    """One JSON document on stdout; what JSON cannot hold is written as its repr."""
    click.echo(json.dumps(document, default=repr, sort_keys=True))


def _plural(count: int, word: str) -> str:
    return word if count == 1 else f"{word}s"


# -- purge ---------------------------------------------------------------------------------
@click.command("purge")
@click.option("-f", "--force", is_flag=True, help="Don't prompt for verification.")
@click.option(
    "-Q", "--queues", multiple=True, metavar="COMMA SEPARATED LIST",
    help="Comma separated list of queue names to purge (default: every known queue).",
)  # fmt: skip
@click.option(
    "-X", "--exclude-queues", multiple=True, metavar="COMMA SEPARATED LIST",
    help="Comma separated list of queue names not to purge.",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def purge_command(
    obj: CLIContext,
    force: bool,
    queues: tuple[str, ...],
    exclude_queues: tuple[str, ...],
    as_json: bool,
) -> None:
    """Erase all messages (ready and delayed) from the known task queues.

    There is no undo. The known queues are task_queues (else task_default_queue).
    Dead letters stay: see 'celeriac dead-letters purge'.
    """
    app = obj.load_app()
    names = sorted(set(comma_list(queues) or app.amqp.queues) - set(comma_list(exclude_queues)))
    if not names:
        _report_purged(app, {}, as_json)
        return
    if not force:
        click.confirm(
            f"WARNING: This will remove all tasks from {len(names)} "
            f"{_plural(len(names), 'queue')}: "
            f"{', '.join(names)}.\n         There is no undo for this operation!\n\n"
            "(to skip this prompt use the -f option)\nAre you sure you want to delete all tasks?",
            abort=True,
        )
    try:
        purged = {name: app.broker.purge(name) for name in names}
    except CeleriacError as exc:
        raise CommandFailed(f"could not purge: {exc}") from exc
    _report_purged(app, purged, as_json)


def _report_purged(app: Any, purged: dict[str, int], as_json: bool) -> None:
    total = sum(purged.values())
    if as_json:
        echo_json({"purged": total, "queues": purged})
        return
    queues = f"{len(purged)} {_plural(len(purged), 'queue')}"
    if not total:
        click.echo(f"No messages purged from {queues}.")
        return
    click.echo(f"Purged {total} {_plural(total, 'message')} from {queues}:")
    for name, count in purged.items():
        click.echo(f"  {name}: {count}")


# -- call ----------------------------------------------------------------------------------
def _json_value(kind: type, what: str) -> Any:
    def convert(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
        if value is None:
            return None
        try:
            loaded = json.loads(value)
        except ValueError as exc:
            raise click.BadParameter(f"not JSON ({exc}): write {what}") from exc
        if not isinstance(loaded, kind):
            raise click.BadParameter(f"{value!r} is not {what}")
        return loaded

    return convert


def _iso_time(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time (2030-01-01T12:00)") from exc


def _expires(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    try:
        return float(value)  # seconds from now
    except ValueError:
        return _iso_time(ctx, param, value)


@click.command("call")
@click.argument("name")
@click.option(
    "-a", "--args", "args", metavar="JSON ARRAY", help="Positional arguments.",
    callback=_json_value(list, 'a JSON array, e.g. \'[2, 2]\''),
)  # fmt: skip
@click.option(
    "-k", "--kwargs", "kwargs", metavar="JSON OBJECT", help="Keyword arguments.",
    callback=_json_value(dict, 'a JSON object, e.g. \'{"x": 2}\''),
)  # fmt: skip
@click.option("--eta", metavar="ISO-8601", callback=_iso_time, help="Scheduled time.")
@click.option("--countdown", type=float, help="ETA in seconds from now.")
@click.option(
    "--expires", metavar="ISO-8601 OR FLOAT", callback=_expires,
    help="Expiry time, or seconds from now.",
)  # fmt: skip
@click.option("--serializer", help="Task serializer (json, msgpack, ...).")
@click.option("--queue", help="Custom queue name.")
@click.option("--exchange", help="Custom exchange name (accepted as by apply_async).")
@click.option("--routing-key", help="Custom routing key (the queue, unless --queue is given).")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def call_command(obj: CLIContext, /, name: str, as_json: bool, **options: Any) -> None:
    """Call a task by name; print its id."""
    app = obj.load_app()
    args, kwargs = options.pop("args"), options.pop("kwargs")
    given = {key: value for key, value in options.items() if value is not None}
    try:
        result = app.send_task(name, args=args, kwargs=kwargs, **given)
    except BrokerError as exc:  # not a mistake on the command line: exit 1, not 64
        raise CommandFailed(f"could not send {name}: {exc}") from exc
    except (CeleriacError, ValueError, TypeError) as exc:
        raise CLIError(f"could not call {name}: {exc}") from exc
    if as_json:
        echo_json({"id": result.id, "task": name})
    else:
        click.echo(result.id)


# -- result --------------------------------------------------------------------------------
@click.command("result")
@click.argument("task_id")
@click.option("-t", "--task", help="Name of task (its own result backend, if it has one).")
@click.option("--traceback", is_flag=True, help="Show traceback instead.")
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def result_command(
    obj: CLIContext, task_id: str, task: str | None, traceback: bool, as_json: bool
) -> None:
    """Print the return value for a given task id (waiting until it is ready)."""
    app = obj.load_app()
    if task is not None and task not in app.tasks:
        raise CLIError(f"no task named {task!r} in this app: check -t/--task")
    result = app.tasks[task].AsyncResult(task_id) if task else app.AsyncResult(task_id)
    if as_json:
        value = None if traceback else result.get(propagate=False)
        echo_json({
            "id": task_id, "state": result.state,
            "result": value if result.successful() else None,
            "exception": None if result.successful() else _exception(result.result),
            "traceback": result.traceback,
        })  # fmt: skip
        return
    if traceback:
        click.echo(result.traceback)
        return
    try:
        click.echo(result.get())
    except Exception as exc:  # the task's own failure, raised again by get()
        raise CommandFailed(f"task {task_id} raised {type(exc).__name__}: {exc}") from exc


def _exception(value: Any) -> str | None:
    if isinstance(value, BaseException):
        return f"{type(value).__name__}: {value}"
    return None if value is None else repr(value)


__all__ = ["call_command", "comma_list", "echo_json", "purge_command", "result_command"]
