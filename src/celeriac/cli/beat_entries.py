"""``celeriac beat entries list|add|remove|enable|disable|run-now``: change the periodic
tasks of running beats, without a restart (``app.beat``; docs/beat.md).

Edge layer (cli). A change is recorded in the broker and the leading beat applies it
within a second. ``list`` shows ``beat_schedule`` merged with the live entries.
"""

from __future__ import annotations

import json
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.schedules import crontab

CATCHUP = click.Choice(["latest", "all", "none"])
EXAMPLES: dict[type, str] = {list: "'[1, 2]'", dict: "'{\"a\": 1}'"}


def _json(value: str | None, what: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise CLIError(f"--{what} must be JSON, e.g. {EXAMPLES[kind]}: {exc}") from None
    if not isinstance(parsed, kind):
        raise CLIError(
            f"--{what} must be a JSON {'list' if kind is list else 'object'}, not {value}"
        )
    return parsed


def _describe(spec: dict[str, Any]) -> str:
    if "every" in spec:
        return f"every {spec['every']:g} s"
    zone = f" ({spec['tz']})" if spec.get("tz") else ""
    return f"crontab '{spec.get('crontab')}'{zone}"


@click.group("entries", short_help="List and change the periodic tasks of running beats.")
def entries_group() -> None:
    """List and change the periodic tasks of running beats (no restart needed)."""


@entries_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@click.pass_obj
def list_entries(obj: CLIContext, as_json: bool) -> None:
    """Every entry: beat_schedule merged with the live changes."""
    entries = obj.load_app().beat.entries()
    if as_json:
        click.echo(json.dumps(entries, indent=2, sort_keys=True, default=str))
        return
    for name in sorted(entries):
        fields = entries[name]
        state = "" if fields.get("enabled", True) else "  [disabled]"
        click.echo(f"{name}: {fields.get('task')} {_describe(fields.get('schedule') or {})}{state}")


@entries_group.command("add")
@click.argument("name")
@click.option("--task", required=True, help="The task name, e.g. proj.tasks.report.")
@click.option("--every", type=click.FloatRange(min=0, min_open=True), help="Seconds between runs.")
@click.option("--crontab", "cron", metavar="'M H DOM MON DOW'", help="A five-field cron line.")
@click.option("--tz", help="The crontab's time zone (IANA name); default: the app's timezone.")
@click.option("--args", help="Positional arguments as a JSON list.")
@click.option("--kwargs", help="Keyword arguments as a JSON object.")
@click.option("--options", help='apply_async options as a JSON object, e.g. {"queue": "q"}.')
@click.option("--catchup", type=CATCHUP, help="What to send for missed runs.")
@click.pass_obj
def add_entry(
    obj: CLIContext, name: str, task: str, every: float | None, cron: str | None,
    tz: str | None, args: str | None, kwargs: str | None, options: str | None,
    catchup: str | None,
) -> None:  # fmt: skip
    """Add (or replace) the periodic task NAME."""
    if (every is None) == (cron is None):
        raise CLIError(
            "give the schedule as exactly one of --every SECONDS or --crontab 'M H DOM MON DOW'"
        )
    try:
        schedule: Any = every if cron is None else crontab.from_string(cron, tz=tz)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    given = {
        "args": _json(args, "args", list),
        "kwargs": _json(kwargs, "kwargs", dict),
        "options": _json(options, "options", dict),
        "catchup": catchup,
    }
    fields = {key: value for key, value in given.items() if value is not None}
    obj.load_app().beat.add(name, task, schedule, **fields)
    click.echo(f"{name}: added; the leading beat applies it within a second")


def _simple(command: str, verb: str, done: str) -> None:
    @entries_group.command(command)
    @click.argument("name")
    @click.pass_obj
    def run(obj: CLIContext, name: str) -> None:
        getattr(obj.load_app().beat, verb)(name)
        click.echo(f"{name}: {done}")

    run.__doc__ = f"{done.capitalize()} the periodic task NAME."


_simple("remove", "remove", "removed")
_simple("enable", "enable", "enabled")
_simple("disable", "disable", "disabled")


@entries_group.command("run-now")
@click.argument("name")
@click.pass_obj
def run_now(obj: CLIContext, name: str) -> None:
    """Send one run of NAME now, outside its schedule."""
    try:
        task_id = obj.load_app().beat.run_now(name)
    except KeyError as exc:
        raise CLIError(str(exc.args[0])) from None
    click.echo(f"{name}: sent, task id {task_id}")


__all__ = ["entries_group"]
