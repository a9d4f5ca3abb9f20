"""``celeriac events``: follow the cluster's events (``--dump``: one line per event, as
``celery events --dump`` prints them).

Edge layer (cli). Celery's curses monitor and its snapshot cameras are not here: without
``--dump`` the command dumps too, and ``--camera`` (with ``--frequency``/``--maxrate``)
is refused with what to use instead. ``--json`` prints one JSON object per event.
"""

from __future__ import annotations

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.events.dumper import Dumper


@click.command("events", short_help="Follow the events of the cluster.")
@click.option("-d", "--dump", is_flag=True, help="Print each event on one line (the default).")
@click.option("-c", "--camera", help="Refused: celeriac has no snapshot cameras.")
@click.option("-F", "--frequency", "--freq", type=float, help="Camera only (refused).")
@click.option("-r", "--maxrate", help="Camera only (refused).")
@click.option("--json", "as_json", is_flag=True, help="Print each event as one JSON object.")
@click.option("--history", is_flag=True, help="Start with the events the stream still keeps.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many events.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), help="Stop after this many seconds with none."
)
@click.pass_obj
def events_command(
    obj: CLIContext,
    dump: bool,
    camera: str | None,
    frequency: float | None,
    maxrate: str | None,
    as_json: bool,
    history: bool,
    limit: int | None,
    timeout: float | None,
) -> None:
    """Print every event the workers (and clients) send until interrupted. Workers send
    heartbeats always and task events with -E (worker_send_task_events)."""
    if camera or frequency is not None or maxrate:
        raise CLIError(
            "--camera/--frequency/--maxrate: celeriac has no snapshot cameras; follow the "
            "events with app.events.Receiver and keep app.events.State() yourself "
            "(docs/monitoring.md, Events), or use --dump"
        )
    app = obj.load_app()
    dumper = Dumper(as_json=as_json)
    if not as_json:
        dumper.say("-> evdump: starting capture...")
    receiver = app.events.Receiver(app, handlers={"*": dumper.on_event}, history=history)
    try:
        receiver.capture(limit=limit, timeout=timeout, wakeup=False)
    except TimeoutError:
        return
    except KeyboardInterrupt:
        return


__all__ = ["events_command"]
