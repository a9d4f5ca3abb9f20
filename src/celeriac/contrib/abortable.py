"""``celery.contrib.abortable``: tasks that a caller can ask to stop, and that check.

``result.abort()`` records the state ``ABORTED`` in the result store; the running task
looks with ``self.is_aborted()`` at points of its choosing and returns early. Nothing is
interrupted: a task that never checks runs to its end (whose state then replaces
``ABORTED``), and one that has not started yet still starts. For stopping a task by force,
``revoke(terminate=True)`` ends it on the prefork pool.
"""

from __future__ import annotations

from typing import Any

from celeriac.result import AsyncResult
from celeriac.task import Task

__all__ = ["ABORTED", "AbortableAsyncResult", "AbortableTask"]

ABORTED = "ABORTED"


class AbortableAsyncResult(AsyncResult[Any]):
    """A result whose task can be asked to stop with ``abort()``."""

    def is_aborted(self) -> bool:
        return self.state == ABORTED

    def abort(self) -> None:
        """Ask the task to stop: it sees ``is_aborted()`` turn true."""
        self.backend.store_result(self.id, None, ABORTED)


class AbortableTask(Task[Any, Any]):
    """A task base class (``@app.task(bind=True, base=AbortableTask)``) whose calls return
    an ``AbortableAsyncResult`` and that can ask ``self.is_aborted()``."""

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AbortableAsyncResult:
        return AbortableAsyncResult(task_id, task_name=self.name, app=self.app, **kwargs)

    def is_aborted(self, **kwargs: Any) -> bool:
        """Whether this run (or ``task_id=``) was asked to stop."""
        task_id = kwargs.get("task_id", self.request.id)
        return task_id is not None and self.AsyncResult(task_id).is_aborted()
