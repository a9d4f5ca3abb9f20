"""``celeriac.registry.tasks``: Celery 3's module path for the current app's task
registry (``current_app.tasks``), kept as Celery keeps it.

Leaf: reads the current app from ``_context`` (duck-typed), imports nothing else.
"""

from __future__ import annotations

from typing import Any

from celeriac._context import get_current_app


def __getattr__(name: str) -> Any:
    if name == "tasks":  # looked up on each use: the current app may change
        return get_current_app().tasks
    raise AttributeError(f"module 'celeriac.registry' has no attribute {name!r}")


__all__ = ["tasks"]  # noqa: F822  (served by the module's __getattr__)
