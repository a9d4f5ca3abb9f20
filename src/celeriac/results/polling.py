"""``poll_ready``: wait for a result by reading it again and again, for the stores that
cannot tell a waiter when a record is written (the database, memcached).

Seam helper: imports the standard library only. The first read is at once, the next
after ``FIRST_PAUSE``, doubling up to ``MAX_PAUSE``: a fast task is seen within
milliseconds, a long one costs a waiter at most four reads a second.
"""

from __future__ import annotations

import time
from collections.abc import Callable

FIRST_PAUSE = 0.005
MAX_PAUSE = 0.25


def poll_ready(read: Callable[[], bytes | None], timeout: float | None) -> bytes | None:
    """What ``read()`` returns once it is not None; None if ``timeout`` seconds pass first
    (``timeout=None`` waits without end)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pause = FIRST_PAUSE
    while True:
        raw = read()
        if raw is not None:
            return raw
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return None
        time.sleep(pause if remaining is None else min(pause, remaining))  # nothing to await
        pause = min(pause * 2, MAX_PAUSE)


__all__ = ["FIRST_PAUSE", "MAX_PAUSE", "poll_ready"]
