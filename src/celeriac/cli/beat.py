"""``celeriac beat``: run the periodic task scheduler (Celery's options).

Edge layer (cli). Start as many as you like against one broker: one leads and sends, the
others stand by and take over when it stops (docs/beat.md). ``-s/--schedule`` is
accepted for Celery's command lines and noted: the state lives in the broker, not in a
file. ``--detach`` is refused, as for the worker.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from typing import Any

import click

from celeriac.app.logsetup import setup_logging
from celeriac.beat import Service
from celeriac.cli.base import LOGLEVEL, CLIContext, CLIError
from celeriac.cli.beat_entries import entries_group
from celeriac.cli.pidfile import Pidfile, PidfileInUse
from celeriac.cli.worker import ConfigError
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.worker.exitcodes import EX_UNAVAILABLE

SECONDS = click.FloatRange(min=0, min_open=True)


def stop_on_signals(service: Service) -> None:
    """SIGTERM and SIGINT stop the service after its current tick (state written, lease
    given up, so a standby takes over at once)."""

    def handler(signum: int, frame: Any) -> None:
        service.stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, handler)


def banner(service: Service) -> str:
    scheduler = service.scheduler
    conf = service.app.conf
    return "\n".join(
        [
            f"celeriac beat is starting ({len(scheduler.schedule)} entries).",
            "LocalTime -> " + scheduler.now().isoformat(timespec="seconds"),
            "Configuration ->",
            f"    . broker -> {service.app.connection_for_write().as_uri()}",
            f"    . scheduler -> {type(scheduler).__module__}.{type(scheduler).__name__}",
            "    . state -> kept in the broker",
            f"    . maxinterval -> {scheduler.max_interval:g} s",
            f"    . lease -> {conf.beat_lease_timeout:g} s as {scheduler.holder}",
        ]
    )


@click.group(
    "beat",
    invoke_without_command=True,
    short_help="Start the periodic task scheduler; change its entries.",
    context_settings={"max_content_width": 100},
)
@click.option("-l", "--loglevel", type=LOGLEVEL, help="Log level (default: WARNING).")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False), help="Log here, not stderr.")
@click.option(
    "-s", "--schedule", "schedule_filename", metavar="FILE",
    help="Accepted for Celery: the state lives in the broker, so no file is written.",
)  # fmt: skip
@click.option(
    "-S", "--scheduler", metavar="MODULE:CLASS",
    help="Scheduler class (default: beat_scheduler, celeriac.beat:PersistentScheduler).",
)  # fmt: skip
@click.option(
    "--max-interval", type=SECONDS,
    help="Longest sleep between checks of the schedule (default: beat_max_loop_interval).",
)  # fmt: skip
@click.option("--pidfile", type=click.Path(dir_okay=False), help="Write the pid here.")
@click.option("--detach", is_flag=True, help="Refused: run under a process manager.")
@click.pass_context
def beat_command(
    ctx: click.Context,
    /,
    loglevel: str | None,
    logfile: str | None,
    schedule_filename: str | None,
    scheduler: str | None,
    max_interval: float | None,
    pidfile: str | None,
    detach: bool,
) -> None:
    """Send the periodic tasks of beat_schedule when they are due, exactly once each,
    however many beats run. 'beat entries ...' changes the entries of running beats."""
    if ctx.invoked_subcommand is not None:
        return
    obj: CLIContext = ctx.obj
    if detach:
        raise CLIError(
            "--detach is not supported: run beat in the foreground under a process manager "
            "(systemd, supervisord, a container runtime); start several for fail-over"
        )
    app = obj.load_app()
    setup_logging(loglevel or obj.loglevel or "WARNING", logfile, app)
    try:
        with Pidfile(pidfile) if pidfile else contextlib.nullcontext():
            service = Service(
                app,
                max_interval=max_interval,
                schedule_filename=schedule_filename,
                scheduler_cls=scheduler,
            )
            if not obj.quiet:  # -q
                click.echo(banner(service))
            if schedule_filename:
                click.echo(f"Note: -s {schedule_filename}: beat keeps its state in the broker.")
            stop_on_signals(service)
            service.start()
    except PidfileInUse as exc:
        raise CLIError(str(exc)) from exc
    except ImproperlyConfigured as exc:
        raise ConfigError(str(exc)) from exc
    except BrokerConnectionError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)


beat_command.add_command(entries_group)

__all__ = ["beat_command"]
