"""The worker's traceback put back on a task's re-raised error (``task_remote_tracebacks``).

Imports leaves only. A failure's record keeps the worker's traceback as text; with the
setting on and the optional ``tblib`` installed (``celeriac[tblib]``), ``get()`` raises
the error with that traceback rebuilt as frames, so a debugger or a log shows where in the
task it happened, below the caller's own frames.
"""

from __future__ import annotations

import importlib
import warnings
from types import TracebackType
from typing import Any

from celeriac.exceptions import CeleryWarning

try:  # optional: celeriac[tblib]
    _tblib: Any = importlib.import_module("tblib")
except ImportError:
    _tblib = None

_warned = False


def remote_traceback(meta: dict[str, Any], conf: Any) -> TracebackType | None:
    """The traceback of the failure in ``meta`` as frames, or None: the setting is off,
    no traceback was stored, or its text cannot be read back (e.g. it was cut short)."""
    text = meta.get("traceback")
    if not (text and conf.task_remote_tracebacks):
        return None
    if _tblib is None:
        _warn_missing()
        return None
    try:
        traceback: TracebackType = _tblib.Traceback.from_string(text).as_traceback()
    except (_tblib.TracebackParseError, ValueError, TypeError):
        return None
    return traceback


def _warn_missing() -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(
            CeleryWarning(
                "task_remote_tracebacks is on but tblib is not installed, so errors are "
                "raised without the worker's traceback: pip install 'celeriac[tblib]' (or "
                "turn the setting off)"
            ),
            stacklevel=4,
        )


__all__ = ["remote_traceback"]
