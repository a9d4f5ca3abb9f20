"""``worker_pool_start_method`` / ``--pool-start-method``: how prefork children start.

Runtime layer, pure checks. celeriac's prefork pool forks its children, so they inherit
the loaded app and task modules; ``'fork'`` (Celery's default) is what it does, and
``'spawn'`` is refused with what to use instead.
"""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import ImproperlyConfigured

SPAWN_REFUSED = (
    "celeriac's prefork pool forks its children (they inherit the loaded app), so the "
    "'spawn' start method is not offered: keep 'fork', or run code that is unsafe to fork "
    "with -P threads (blocking I/O) or -P solo"
)


def check_start_method(value: Any) -> str:
    """``value`` when it is ``'fork'``; ``ImproperlyConfigured`` naming the fix otherwise."""
    if value == "fork":
        return "fork"
    if value == "spawn":
        raise ImproperlyConfigured(f"worker_pool_start_method='spawn': {SPAWN_REFUSED}")
    raise ImproperlyConfigured(f"worker_pool_start_method must be 'fork' or 'spawn', not {value!r}")


__all__ = ["SPAWN_REFUSED", "check_start_method"]
