"""``celeriac embedded status`` and ``celeriac embedded stop``: the embedded Redis, shown
and stopped.

Edge layer (cli). The server outlives every worker (``brokers.embedded`` says why), so
these commands are how a user finds it and stops it: the current directory's project's,
or with ``--all`` every project's server that has state in the cache directory.
"""

from __future__ import annotations

import click

from celeriac.brokers.embedded import EmbeddedServer, servers, state_root
from celeriac.cli.base import CommandFailed
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured

EX_NOT_RUNNING = 3  # ``status``: no server runs (the LSB init-script convention)
EX_TEMPFAIL = 75  # ``stop``: refused while others are connected; stop them and retry

ALL = click.option(
    "--all", "every", is_flag=True, help="Every project's server, not only this project's."
)


def chosen(every: bool) -> list[EmbeddedServer]:
    """The servers a command acts on: this project's, or every one with state."""
    try:
        return servers() if every else [EmbeddedServer()]
    except ImproperlyConfigured as exc:  # e.g. a state path too long for a socket
        raise CommandFailed(str(exc)) from exc


def describe(server: EmbeddedServer) -> str:
    """One line: the project, whether its server runs, and where."""
    pid = server.pid()
    if pid is not None and server.running():
        return f"{server.project}: running (pid {pid}) at {server.url}, state in {server.dir}"
    if not (server.dir / "redis.conf").is_file():
        return f"{server.project}: not running (never started; it would live in {server.dir})"
    return f"{server.project}: not running, state in {server.dir}"


@click.group("embedded", short_help="Show or stop the project's embedded Redis.")
def embedded_group() -> None:
    """The embedded Redis that serves an app with no broker_url (celeriac[embedded]).

    It is started on first use, one per project directory, and keeps running after the
    worker stops so that the next worker or producer finds it. The project is the
    nearest directory at or above the current one with pyproject.toml, setup.py,
    setup.cfg or .git (use --workdir to pick another).
    """


@embedded_group.command("status")
@ALL
@click.pass_context
def status_command(ctx: click.Context, every: bool) -> None:
    """Say whether the server runs, its pid, socket and state directory.

    Exits 0 when a server listed runs, 3 when none does.
    """
    listed = chosen(every)
    if not listed:
        click.echo(f"no embedded Redis has state in {state_root()}")
    for server in listed:
        click.echo(describe(server))
    ctx.exit(0 if any(server.running() for server in listed) else EX_NOT_RUNNING)


@embedded_group.command("stop")
@ALL
@click.option(
    "--force", is_flag=True, help="Stop it even while workers or producers are connected."
)
@click.pass_context
def stop_command(ctx: click.Context, every: bool, force: bool) -> None:
    """Stop the server (its data stays; the next use starts it again).

    Refused (exit 75) while other processes are connected, unless --force.
    """
    refused = False
    for server in chosen(every):
        busy = server.other_clients() if server.running() else 0
        if busy and not force:
            click.echo(
                f"Error: {server.project}: not stopped: {busy} other connection(s) are open "
                f"(a worker or producer still running?): stop them first, or pass --force",
                err=True,
            )
            refused = True
            continue
        pid = server.pid()
        try:
            stopped = server.stop()
        except BrokerConnectionError as exc:
            raise CommandFailed(str(exc)) from exc
        if stopped:
            click.echo(f"{server.project}: stopped (pid {pid}); its data stays in {server.data}")
        else:
            click.echo(f"{server.project}: was not running")
    ctx.exit(EX_TEMPFAIL if refused else 0)


__all__ = ["EX_NOT_RUNNING", "EX_TEMPFAIL", "embedded_group"]
