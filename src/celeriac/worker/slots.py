"""``Slots``: how many jobs the consumer lets run at once, a count that can change while
the worker runs (``pool_grow`` / ``pool_shrink``).

Runtime layer, stdlib only. ``async with slots:`` waits for a free slot. Growing frees
room at once; shrinking takes effect as running jobs end (none is interrupted).
"""

from __future__ import annotations

import asyncio
import collections


class Slots:
    """A semaphore whose size can be changed; used on one event loop."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least 1 slot, not {size}")
        self.size = size
        self.used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def acquire(self) -> None:
        while self.used >= self.size:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, then cancelled: pass the free slot on
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.used += 1

    def release(self) -> None:
        self.used -= 1
        self._wake()

    def resize(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"a pool needs at least 1 slot, not {size}")
        self.size = size
        self._wake()

    def _wake(self) -> None:
        """Wake as many waiters as there are free slots (each checks again)."""
        free = self.size - self.used
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()
