"""``celeriac dashboard`` and its alias ``celeriac flower``: the web dashboard.

Edge layer (cli). The dashboard package needs the ``dashboard`` extra; a missing one stops
the command with the install line. ``flower`` takes Flower's common flags (``--port``,
``--address``, ``--basic-auth``, ``--url-prefix``, also spelt with underscores); Flower's
plain-text ``--basic-auth`` passwords are refused: give a hash (``--hash-password``).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.cli.ops import comma_list
from celeriac.exceptions import ImproperlyConfigured

PORTS = click.IntRange(min=1, max=65535)
NEEDED = ("starlette", "uvicorn", "jinja2")


def require_dashboard_extra() -> None:
    missing = [name for name in NEEDED if importlib.util.find_spec(name) is None]
    if missing:
        raise CLIError(
            f"the dashboard needs {', '.join(missing)}: pip install 'celeriac[dashboard]'"
        )


def _options(command: Any) -> Any:
    for option in reversed((
        click.option("--port", type=PORTS, default=5555, show_default=True,
                     help="Port to serve on."),
        click.option("--address", default="127.0.0.1", show_default=True,
                     help="Address to bind; any other than loopback needs authentication."),
        click.option("--basic-auth", "--basic_auth", "basic_auth", metavar="USER:HASH[,...]",
                     help="HTTP basic authentication: users with PBKDF2 password hashes."),
        click.option("--token-file", type=click.Path(exists=True, dir_okay=False,
                                                     path_type=Path),
                     help="A file holding a bearer token that authenticates API calls."),
        click.option("--url-prefix", "--url_prefix", "url_prefix", default="",
                     help="Serve under this path (behind a reverse proxy)."),
        click.option("--read-only", is_flag=True, help="Refuse every action (revoke, "
                     "purge, replay): a dashboard to look at only."),
        click.option("-Q", "--queues", multiple=True, metavar="COMMA SEPARATED LIST",
                     help="Queues to show (default: every known queue)."),
        click.option("--hash-password", is_flag=True,
                     help="Ask for a password, print its hash for --basic-auth, and exit."),
    )):  # fmt: skip
        command = option(command)
    return command


def run_dashboard(
    obj: CLIContext, port: int, address: str, basic_auth: str | None, token_file: Path | None,
    url_prefix: str, read_only: bool, queues: tuple[str, ...], hash_password: bool,
) -> None:  # fmt: skip
    require_dashboard_extra()
    from celeriac.dashboard import security, server

    if hash_password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
        click.echo(security.hash_password(password))
        return
    try:
        users = security.parse_basic_auth(basic_auth) if basic_auth else {}
        token = token_file.read_text().strip() if token_file else None
        auth = security.Auth.from_token(token) if token else security.Auth()
        auth.users, auth.read_only = users, read_only
        server.check_exposure(address, auth)
    except (ValueError, ImproperlyConfigured) as exc:
        raise CLIError(str(exc)) from exc
    app = obj.load_app()
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    host = f"[{address}]" if ":" in address and not address.startswith("[") else address
    click.echo(f"celeriac dashboard: serving http://{host}:{port}{prefix}/")
    try:
        server.serve(app, address, port, auth, url_prefix, comma_list(queues))
    except ImproperlyConfigured as exc:
        raise CLIError(str(exc)) from exc
    finally:
        app.close()


@click.command("dashboard")
@_options
@click.pass_obj
def dashboard_command(obj: CLIContext, /, **options: Any) -> None:
    """Serve the web dashboard: workers, tasks, queues and dead letters, live."""
    run_dashboard(obj, **options)


@click.command("flower")
@_options
@click.pass_obj
def flower_command(obj: CLIContext, /, **options: Any) -> None:
    """The dashboard under Flower's command name and common flags."""
    run_dashboard(obj, **options)


__all__ = ["dashboard_command", "flower_command", "require_dashboard_extra"]
