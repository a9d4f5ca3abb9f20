"""The ``celeriac`` command line (``celeriac -A proj worker -l info``), Celery's options.

Edge layer: imports any part of celeriac, and nothing in celeriac imports it. One module
per subcommand; ``base`` holds the group and its global options, ``loading`` finds the app.
"""

from __future__ import annotations

from collections.abc import Sequence

from celeriac.cli.base import cli
from celeriac.cli.worker import worker_command

cli.add_command(worker_command)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: ``celeriac ...`` and ``python -m celeriac ...``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="celeriac")


__all__ = ["cli", "main"]
