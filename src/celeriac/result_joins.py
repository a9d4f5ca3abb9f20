"""``allow_join_result()`` and ``denied_join_result()``: let ``result.get()`` wait inside a
task for a block of code, or forbid it again, as Celery's context managers do.

``result.get()`` inside a task raises ``SyncSubtaskError`` (a task waiting on another can
deadlock the workers); code that knows better wraps the wait in ``allow_join_result()``.
Leaf over ``_context``: the permission is a context variable, so asyncio tasks running
side by side each have their own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from celeriac._context import join_allowed

__all__ = ["allow_join_result", "denied_join_result"]


@contextlib.contextmanager
def allow_join_result() -> Iterator[None]:
    """Inside the block, ``result.get()`` may wait even in a task."""
    token = join_allowed.set(True)
    try:
        yield
    finally:
        join_allowed.reset(token)


@contextlib.contextmanager
def denied_join_result() -> Iterator[None]:
    """Inside the block, ``result.get()`` in a task raises again, even within an
    ``allow_join_result()`` block."""
    token = join_allowed.set(False)
    try:
        yield
    finally:
        join_allowed.reset(token)
