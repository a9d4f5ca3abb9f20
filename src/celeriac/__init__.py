"""celeriac: a distributed task queue with Celery's API and production-safe defaults.

``from celeriac import Celery`` is all a Celery project changes. This module only
re-exports the public API; it sits above every layer.
"""

import importlib
from typing import Any, NamedTuple

from celeriac.app import Celeriac, Celery, shared_task
from celeriac.app.proxies import current_app, current_task
from celeriac.canvas import (
    Signature,
    chain,
    chord,
    chunks,
    group,
    maybe_signature,
    signature,
    subtask,
    xmap,
    xstarmap,
)
from celeriac.result import AsyncResult, EagerResult, GroupResult, ResultSet
from celeriac.task import Task, new_id

uuid = new_id
__version__ = "0.1.0"


class version_info_t(NamedTuple):
    major: int
    minor: int
    micro: int
    releaselevel: str
    serial: str


VERSION = version_info = version_info_t(0, 1, 0, "", "")
SERIES = "first harvest"
VERSION_BANNER = f"{__version__} ({SERIES})"


def bugreport(app: Celeriac | None = None) -> str:
    """Versions, platform, URLs and changed settings of ``app`` (the current app by
    default), secrets masked: what to paste into a bug report."""
    return (app if app is not None else current_app).bugreport()


#: Celery 3's module paths, importable as attributes the way Celery keeps them
#: (``celeriac.execute.send_task``), loaded on first use.
_OLD_MODULES = frozenset({"execute", "registry", "local"})


def __getattr__(name: str) -> Any:
    if name in _OLD_MODULES:
        return importlib.import_module(f"celeriac.{name}")
    raise AttributeError(f"module 'celeriac' has no attribute {name!r}")


__all__ = [
    "SERIES",
    "VERSION",
    "VERSION_BANNER",
    "AsyncResult",
    "Celeriac",
    "Celery",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "Signature",
    "Task",
    "__version__",
    "bugreport",
    "chain",
    "chord",
    "chunks",
    "current_app",
    "current_task",
    "group",
    "maybe_signature",
    "shared_task",
    "signature",
    "subtask",
    "uuid",
    "version_info",
    "version_info_t",
    "xmap",
    "xstarmap",
]
