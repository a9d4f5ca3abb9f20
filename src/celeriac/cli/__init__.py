"""The ``celeriac`` command line (``celeriac -A proj worker -l info``), Celery's options.

Edge layer: imports any part of celeriac, and nothing in celeriac imports it. One module
per subcommand; ``base`` holds the group and its global options, ``loading`` finds the app,
``alias`` is the ``celery`` console script.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from celeriac.app.base import Celeriac
from celeriac.cli.amqp import amqp_group
from celeriac.cli.base import cli
from celeriac.cli.beat import beat_command
from celeriac.cli.control import control_cli, inspect_cli, status_cli
from celeriac.cli.dashboard import dashboard_command, flower_command
from celeriac.cli.deadletters import dead_letters_group
from celeriac.cli.embedded import embedded_group
from celeriac.cli.events import events_command
from celeriac.cli.graph import graph_group
from celeriac.cli.listing import list_group
from celeriac.cli.logtool import logtool_group
from celeriac.cli.metrics import exporter_command
from celeriac.cli.migrate import migrate_command
from celeriac.cli.migrate_queue import migrate_queue_command
from celeriac.cli.multi import multi_command
from celeriac.cli.ops import call_command, purge_command, result_command
from celeriac.cli.outbox import outbox_group
from celeriac.cli.report import report_command
from celeriac.cli.shell import shell_command
from celeriac.cli.upgrade import upgrade_group
from celeriac.cli.worker import worker_command

cli.add_command(worker_command)
cli.add_command(embedded_group)
for command in (
    amqp_group,
    beat_command,
    call_command,
    control_cli,
    dashboard_command,
    dead_letters_group,
    inspect_cli,
    exporter_command,
    graph_group,
    flower_command,
    events_command,
    list_group,
    logtool_group,
    migrate_command,
    migrate_queue_command,
    multi_command,
    outbox_group,
    purge_command,
    report_command,
    result_command,
    shell_command,
    status_cli,
    upgrade_group,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None, prog_name: str = "celeriac") -> None:
    """The console script: ``celeriac ...`` and ``python -m celeriac ...``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


def run_for_app(app: Celeriac, argv: Sequence[str], prog_name: str = "celeriac") -> int:
    """``app.start(argv)``: the command line for ``app`` (no ``-A`` needed); the exit
    status, where the console script would exit with it."""
    try:
        cli.main(args=list(argv), prog_name=prog_name, standalone_mode=False, obj=app)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        return 1
    except SystemExit as exc:  # a command ending the process (the worker does)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


__all__ = ["cli", "main", "run_for_app"]
