"""``celeriac outbox relay|status``: publish the outbox table's committed rows; count them.

Edge layer (cli); imports ``celeriac.outbox`` (so SQLAlchemy) only when a command runs.
``relay_for`` builds a ``Relay`` from the app's ``outbox_*`` settings (or ``--url``);
``RelayThread`` runs one beside a worker (``celeriac worker --outbox-relay``). SIGTERM
and SIGINT stop the relay between batches.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click

from celeriac.app.logsetup import setup_logging
from celeriac.cli.base import LOGLEVEL, CLIContext, CLIError
from celeriac.cli.ops import JSON_HELP, echo_json

if TYPE_CHECKING:
    from celeriac.outbox import Relay

URL_HELP = "SQLAlchemy URL of the database with the outbox table (default: outbox_database_url)."


def relay_for(app: Any, url: str | None = None) -> Relay:
    """A relay for ``app``'s broker over the database at ``url`` (else the setting)."""
    try:  # SQLAlchemy is optional: only the outbox commands need it
        from celeriac.outbox import Relay, RelaySettings
    except ImportError as exc:
        raise CLIError(
            f"the outbox needs SQLAlchemy 2 with asyncio support ({exc}): "
            "pip install 'celeriac[outbox]'"
        ) from exc
    conf = app.conf
    url = url or conf.outbox_database_url
    if not url:
        raise CLIError(
            "no outbox database: set outbox_database_url (e.g. "
            "'postgresql+psycopg://user@host/db') or pass --url"
        )
    retention = conf.outbox_retention
    settings = RelaySettings(
        batch_size=int(conf.outbox_batch_size),
        poll_interval=float(conf.outbox_poll_interval),
        max_attempts=int(conf.outbox_max_attempts),
        retention=None if retention is None else float(retention),
    )
    return Relay(app.broker, url, settings=settings)


class RelayThread:
    """A relay on a thread of its own, for the worker's ``--outbox-relay``."""

    def __init__(self, relay: Relay) -> None:
        self.relay = relay
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=relay.run, args=(self.stop,), name="celeriac-outbox-relay", daemon=True
        )

    def start(self) -> RelayThread:
        self.thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        self.stop.set()
        self.thread.join(timeout)


@click.group(name="outbox")
def outbox_group() -> None:
    """The transactional outbox: task calls kept in your database until committed."""


@outbox_group.command(name="relay")
@click.option("--url", help=URL_HELP)
@click.option("-l", "--loglevel", type=LOGLEVEL, help="Log level (default: INFO).")
@click.pass_obj
def relay_command(obj: CLIContext, /, url: str | None, loglevel: str | None) -> None:
    """Publish committed outbox rows to the broker until stopped (SIGTERM, Ctrl-C)."""
    app = obj.load_app()
    setup_logging(loglevel or obj.loglevel or "INFO", None, app)
    relay = relay_for(app, url)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    click.echo(f"outbox relay: {relay.engine.url!r} -> {app.conf.broker_url or 'the broker'}")
    try:
        relay.run(stop)
    finally:
        app.broker.close()


@outbox_group.command(name="status")
@click.option("--url", help=URL_HELP)
@click.option("--json", "as_json", is_flag=True, help=JSON_HELP)
@click.pass_obj
def status_command(obj: CLIContext, /, url: str | None, as_json: bool) -> None:
    """Count the outbox rows that are pending, sent and dead."""
    counts = relay_for(obj.load_app(), url).counts()
    if as_json:
        echo_json(counts)
        return
    for status, count in counts.items():
        click.echo(f"{status}: {count}")


__all__ = ["RelayThread", "outbox_group", "relay_for"]
