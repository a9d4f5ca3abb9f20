"""A flag that a fetch waits on, with a time limit, on the broker's I/O loop.

``asyncio.wait_for(event.wait(), timeout)`` wraps each wait in a task of its own (on
Python before 3.12), and a busy worker waits once per task it runs: here a wait is one
future and one timer handle. Imports only the stdlib.
"""

from __future__ import annotations

import asyncio


class Wakeup:
    """Set by whoever has news (a message arrived, a channel closed); cleared by the
    waiter before it looks for the news, so none that comes after the look is missed."""

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] = []

    def set(self) -> None:
        self._set = True
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self, timeout: float) -> bool:
        """Until set (True) or ``timeout`` seconds passed (False)."""
        if self._set:
            return True
        if timeout <= 0:
            return False
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        timer = loop.call_later(timeout, _time_up, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            if waiter in self._waiters:  # (cancelled, or the time was up)
                self._waiters.remove(waiter)
        return self._set


def _time_up(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
