"""Publishes that return before RabbitMQ's confirm: the confirms are awaited on the I/O loop.

A producer calling ``.delay()`` in a loop would otherwise wait one network round trip (and
RabbitMQ's disk write) per call. Here the call hands the message to the I/O loop and
returns; the confirm is awaited there. A message RabbitMQ refused or returned, or one whose
connection died before its confirm, is kept as a failure and raised from the producer's
next publish, from ``flush()``, and logged when the process exits. At most ``window``
messages are unconfirmed at once: the call that would exceed it waits for all of them.
Engine helper: imports only the stdlib and ``celeriac.exceptions``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from celeriac.exceptions import BrokerConnectionError, BrokerError

T = TypeVar("T")
DEFAULT_WINDOW = 1000
_FIRST_PAUSE, _LONGEST_PAUSE = 0.1, 1.0  # seconds between attempts to reach RabbitMQ again


async def surviving_outages(attempt: Callable[[], Awaitable[T]], within: float) -> T:
    """``attempt()``, made again after a lost connection (backing off) until ``within``
    seconds have passed: a caller that already returned cannot retry for itself. A copy
    whose confirm was lost with its connection may be stored twice (at least once)."""
    deadline = time.monotonic() + within
    pause = _FIRST_PAUSE
    while True:
        try:
            return await attempt()
        except BrokerConnectionError:
            if time.monotonic() + pause > deadline:
                raise
        await asyncio.sleep(pause)  # a back-off between reconnects, not a synchronisation
        pause = min(pause * 2, _LONGEST_PAUSE)


class Pipeline:
    """The unconfirmed publishes of one broker: how many, the work awaiting their
    confirms (on the I/O loop), and the failures not yet reported."""

    def __init__(self, window: int = DEFAULT_WINDOW) -> None:
        self.window = window
        self._lock = threading.Lock()  # callers' threads and the I/O loop both count
        self._in_flight = 0
        self._work: set[asyncio.Future[None]] = set()
        self._failures: list[BaseException] = []
        # Held from a call's queue declaration to its sends' start, so that calls reach
        # the channel in the order they were made even when one waits for a declaration.
        self.order = asyncio.Lock()

    # -- the producer's thread ------------------------------------------------------------
    def admit(self, count: int) -> bool:
        """Take ``count`` places in the window; False (nothing taken) when it is full."""
        with self._lock:
            if self._in_flight and self._in_flight + count > self.window:
                return False
            self._in_flight += count
            return True

    def raise_failures(self) -> None:
        """Raise ``BrokerError`` for the earlier publishes that were not stored, once."""
        with self._lock:
            failures, self._failures = self._failures, []
        if not failures:
            return
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise BrokerError(
            f"{len(failures)} message(s) this process published earlier were not stored "
            f"by RabbitMQ: {failures[0]}{more}. The call that raised this did not send its "
            f"own message; send it again. To learn of a failure at the call that caused "
            f"it, set broker_transport_options={{'confirm_publish': True}}"
        ) from failures[0]

    @property
    def unconfirmed(self) -> int:
        """Messages handed over and not yet confirmed (or failed)."""
        with self._lock:
            return self._in_flight

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._in_flight == 0 and not self._work

    # -- the I/O loop ---------------------------------------------------------------------
    def track(self, work: asyncio.Future[None], places: int) -> None:
        """Keep ``work`` until it ends; then give back ``places`` and keep its error."""
        self._work.add(work)
        work.add_done_callback(lambda done: self._settled(done, places))

    def give_back(self, places: int) -> None:
        """Places taken by messages that will never be sent (their failure is kept)."""
        with self._lock:
            self._in_flight -= places

    def _settled(self, work: asyncio.Future[None], places: int) -> None:
        self._work.discard(work)
        if work.cancelled():
            error: BaseException | None = BrokerError(
                "a publish was cancelled before RabbitMQ confirmed it (the broker was closed)"
            )
        else:
            error = work.exception()
        with self._lock:
            self._in_flight -= places
            if error is not None:
                self._failures.append(error)

    async def settle(self) -> None:
        """Wait until every publish handed over so far is confirmed or failed."""
        while self._work:
            await asyncio.wait(set(self._work))
