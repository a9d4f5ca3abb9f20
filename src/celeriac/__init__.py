"""celeriac: a distributed task queue with Celery's API and production-safe defaults.

``from celeriac import Celery`` is all a Celery project changes. This module only
re-exports the public API; it sits above every layer.
"""

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

__all__ = [
    "AsyncResult",
    "Celeriac",
    "Celery",
    "EagerResult",
    "GroupResult",
    "ResultSet",
    "Signature",
    "Task",
    "__version__",
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
    "xmap",
    "xstarmap",
]
