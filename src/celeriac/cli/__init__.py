"""The ``celeriac`` command line (``celeriac -A proj worker -l info``), Celery's options.

Edge layer: imports any part of celeriac, and nothing in celeriac imports it. One module
per subcommand; ``base`` holds the group and its global options, ``loading`` finds the app,
``alias`` is the ``celery`` console script.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from celeriac.app.base import Celeriac
from celeriac.cli.base import cli

# Each subcommand's module is imported when the command runs (or --help lists it), so a
# process loads only its own command's code: a worker does not carry the dashboard's,
# beat's or the migration tools' modules (about 1.4 MB of a worker's memory).
cli.lazy_commands.update(
    {
        "amqp": "celeriac.cli.amqp:amqp_group",
        "beat": "celeriac.cli.beat:beat_command",
        "call": "celeriac.cli.ops:call_command",
        "control": "celeriac.cli.control:control_cli",
        "dashboard": "celeriac.cli.dashboard:dashboard_command",
        "dead-letters": "celeriac.cli.deadletters:dead_letters_group",
        "embedded": "celeriac.cli.embedded:embedded_group",
        "events": "celeriac.cli.events:events_command",
        "exporter": "celeriac.cli.metrics:exporter_command",
        "flower": "celeriac.cli.dashboard:flower_command",
        "graph": "celeriac.cli.graph:graph_group",
        "inspect": "celeriac.cli.control:inspect_cli",
        "list": "celeriac.cli.listing:list_group",
        "logtool": "celeriac.cli.logtool:logtool_group",
        "migrate": "celeriac.cli.migrate:migrate_command",
        "migrate-queue": "celeriac.cli.migrate_queue:migrate_queue_command",
        "multi": "celeriac.cli.multi:multi_command",
        "outbox": "celeriac.cli.outbox:outbox_group",
        "purge": "celeriac.cli.ops:purge_command",
        "report": "celeriac.cli.report:report_command",
        "result": "celeriac.cli.ops:result_command",
        "shell": "celeriac.cli.shell:shell_command",
        "status": "celeriac.cli.control:status_cli",
        "upgrade": "celeriac.cli.upgrade:upgrade_group",
        "worker": "celeriac.cli.worker:worker_command",
    }
)


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
