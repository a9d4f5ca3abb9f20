"""A lock that a forked child gets anew, not held.

``fork`` copies a lock in the state it is in: one that another thread of the parent held
at that moment stays held in the child for good (its holder does not exist there), and
the child's first use of it waits forever. The locks that guard making a client or an
engine on first use (``app.broker``, a Redis client) can be held while a prefork worker
replaces a child; these are made anew in every child. Imports only the stdlib.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

_LOCKS: weakref.WeakSet[ForkSafeLock] = weakref.WeakSet()


class ForkSafeLock:
    """``threading.Lock`` (``RLock`` with ``reentrant``), made anew after a fork."""

    __slots__ = ("__weakref__", "_lock", "_reentrant")

    def __init__(self, *, reentrant: bool = False) -> None:
        self._reentrant = reentrant
        self._lock = self._new()
        _LOCKS.add(self)

    def _new(self) -> Any:
        return threading.RLock() if self._reentrant else threading.Lock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _renew(self) -> None:
        self._lock = self._new()


def _after_fork_in_child() -> None:
    for lock in list(_LOCKS):
        lock._renew()


os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = ["ForkSafeLock"]
