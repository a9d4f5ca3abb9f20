"""Per-execution context: which task request is running in this thread or coroutine.

Leaf module: imports nothing from celeriac. ``trace`` sets it; the task logger,
``Task.request`` and the ``result.get()`` guard read it. A ContextVar (not a
thread-local) so that asyncio tasks running side by side each see their own.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any

#: The ``Request`` of the task body running in this context, or None.
current_request: ContextVar[Any] = ContextVar("celeriac_current_request", default=None)


#: Whether ``result.get()`` may wait inside a task here (``allow_join_result()``).
join_allowed: ContextVar[bool] = ContextVar("celeriac_join_allowed", default=False)


def push_request(request: Any) -> Token[Any]:
    return current_request.set(request)


def pop_request(token: Token[Any]) -> None:
    current_request.reset(token)


def get_current_request() -> Any:
    return current_request.get()


# -- the current app (Celery's ``current_app``) -----------------------------------------------
_current_app: Any = None
_default_app_factory: Any = None


def set_current_app(app: Any) -> None:
    global _current_app
    _current_app = app


def set_default_app_factory(factory: Any) -> None:
    """Register how to build the default app (the app module does, at import)."""
    global _default_app_factory
    _default_app_factory = factory


def get_current_app() -> Any:
    """The app last created (or ``set_current``); a default app if there is none yet."""
    if _current_app is None and _default_app_factory is not None:
        set_current_app(_default_app_factory())
    return _current_app
