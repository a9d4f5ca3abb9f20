"""The ``celery`` console script: celeriac's command line under Celery's name, so
Procfiles and systemd units that run ``celery -A proj worker`` need no edit.

Edge layer (cli). When the real Celery is installed in the same environment (its
distribution's metadata is found), this script runs Celery's own ``celery`` entry point
instead: installing celeriac never takes the ``celery`` command away from Celery.
"""

from __future__ import annotations

import functools
import importlib.metadata
import runpy
import sys
from collections.abc import Callable
from typing import Any

from celeriac.cli import main as celeriac_main

DIST = "celery"  # the real Celery's distribution name on PyPI


def real_celery() -> Callable[[], Any] | None:
    """Celery's own ``celery`` command when Celery is installed here, else None."""
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        return None
    for entry in dist.entry_points:
        if entry.group == "console_scripts" and entry.name == "celery":
            try:
                return entry.load()  # type: ignore[no-any-return]
            except ImportError as exc:
                sys.exit(
                    f"Error: Celery {dist.version} is installed here, so 'celery' is its "
                    f"command, but it could not be loaded ({exc}): repair it (pip install "
                    f"--force-reinstall celery) or run celeriac's command: celeriac"
                )
    # Metadata without the script entry (an unusual build): Celery's own __main__.
    return functools.partial(runpy.run_module, "celery", run_name="__main__", alter_sys=True)


def main() -> None:
    """The ``celery`` console script."""
    command = real_celery()
    if command is not None:
        code = command()
        sys.exit(code if code is None or isinstance(code, int) else 0)
    celeriac_main(prog_name="celery")


__all__ = ["DIST", "main", "real_celery"]
