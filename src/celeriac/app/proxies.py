"""``current_app`` and ``current_task``: objects that forward to what is current when used
(``celeriac.local.Proxy``s)."""

from __future__ import annotations

from typing import Any

from celeriac._context import get_current_app, get_current_request
from celeriac.local import Proxy

__all__ = ["Proxy", "current_app", "current_task"]


def _current_task() -> Any:
    request = get_current_request()
    if request is None or request.task is None:
        return None
    return get_current_app().tasks.get(request.task)


current_app: Any = Proxy(get_current_app)
current_task: Any = Proxy(_current_task)
