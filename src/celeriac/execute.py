"""``celeriac.execute.send_task``: Celery 3's module path for ``current_app.send_task``,
kept as Celery keeps it.

Leaf: reads the current app from ``_context`` (duck-typed), imports nothing else.
"""

from __future__ import annotations

from typing import Any

from celeriac._context import get_current_app


def send_task(*args: Any, **kwargs: Any) -> Any:
    """``current_app.send_task(...)``."""
    return get_current_app().send_task(*args, **kwargs)


__all__ = ["send_task"]
