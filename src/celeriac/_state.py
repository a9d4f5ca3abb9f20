"""What is current here: the app, and the task whose body is running (``celery._state``).

Celery projects import these from ``celery._state`` (a common logging recipe tags each
record with ``get_current_task()``'s id and name). A leaf over ``_context``: the task is
looked up by name in the current app's registry, so nothing here imports the app.
"""

from __future__ import annotations

from typing import Any

from celeriac._context import get_current_app, get_current_request

__all__ = ["get_current_app", "get_current_task", "get_current_worker_task"]


def get_current_task() -> Any:
    """The task whose body is running in this thread or coroutine (eager runs too), or
    None outside a task."""
    request = get_current_request()
    if request is None or request.task is None:
        return None
    return get_current_app().tasks.get(request.task)


def get_current_worker_task() -> Any:
    """As ``get_current_task``, but None for a task run eagerly (``apply()``)."""
    request = get_current_request()
    if request is None or request.is_eager:
        return None
    return get_current_task()
