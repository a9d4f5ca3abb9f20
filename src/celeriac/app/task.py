"""``celery.app.task`` path: re-exports ``Task``."""

from celeriac.task import Task

__all__ = ["Task"]
