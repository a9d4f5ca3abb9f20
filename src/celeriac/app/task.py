"""``celery.app.task`` path: re-exports ``Task`` and ``Context`` (Celery's request class)."""

from celeriac.request import Context
from celeriac.task import Task

__all__ = ["Context", "Task"]
