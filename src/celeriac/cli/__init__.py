"""The ``celeriac`` command line (``celeriac -A proj worker -l info``), Celery's options.

Edge layer: imports any part of celeriac, and nothing in celeriac imports it. One module
per subcommand; ``base`` holds the group and its global options, ``loading`` finds the app,
``alias`` is the ``celery`` console script.
"""

from __future__ import annotations

from collections.abc import Sequence

from celeriac.cli.base import cli
from celeriac.cli.embedded import embedded_group
from celeriac.cli.worker import worker_command

cli.add_command(worker_command)
cli.add_command(embedded_group)


def main(argv: Sequence[str] | None = None, prog_name: str = "celeriac") -> None:
    """The console script: ``celeriac ...`` and ``python -m celeriac ...``."""
    cli.main(args=list(argv) if argv is not None else None, prog_name=prog_name)


__all__ = ["cli", "main"]
