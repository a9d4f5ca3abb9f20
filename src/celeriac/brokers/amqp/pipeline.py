"""Publishes that return before RabbitMQ's confirm: the confirms are awaited on the I/O loop.

A producer calling ``.delay()`` in a loop would otherwise wait one network round trip (and
RabbitMQ's disk write) per call. Here the call puts the message on a hand-over queue and
returns; one task on the I/O loop takes what is queued, in order, publishes it and awaits
the confirms. A message RabbitMQ refused or returned, or one still unconfirmed when its
connection stayed down for the confirm timeout, is kept as a failure and raised from the
producer's next publish, from ``flush()``, and logged when the process exits. At most
``window`` messages are unconfirmed at once: the call that would exceed it waits for all.
A confirm that has not come ``confirm_timeout`` seconds after its publish started is a
failure too: one watch on the I/O loop checks the oldest sends about once a second
(a timer per publish would cost more than the rest of the loop's work for it).
Engine helper: imports only the stdlib, ``io`` and ``celeriac.exceptions``.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from celeriac.brokers.amqp.io import IOThread
from celeriac.exceptions import BrokerConnectionError, BrokerError

T = TypeVar("T")
M = TypeVar("M")
DEFAULT_WINDOW = 1000
WATCH_EVERY = 1.0  # seconds between looks at the oldest unconfirmed sends
_FIRST_PAUSE, _LONGEST_PAUSE = 0.1, 1.0  # seconds between attempts to reach RabbitMQ again
# Takes queued messages (in order) and returns their sends, each ending at its confirm.
HandOver = Callable[[list[M]], Awaitable[list["asyncio.Future[None]"]]]


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


class Pipeline(Generic[M]):
    """The unconfirmed publishes of one broker: the hand-over queue, the work awaiting
    confirms (on the I/O loop), and the failures not yet reported."""

    def __init__(
        self,
        io: IOThread,
        hand_over: HandOver[M],
        window: int = DEFAULT_WINDOW,
        confirm_timeout: float | None = None,
    ):
        self.io, self.window, self.confirm_timeout = io, window, confirm_timeout
        self._hand_over = hand_over
        self._lock = threading.Lock()  # callers' threads and the I/O loop both count
        self._queued: collections.deque[M] = collections.deque()
        self._taking = False  # a task on the I/O loop is taking the queue
        self._in_flight = 0  # queued, or sent and not yet confirmed or failed
        self._work: set[asyncio.Future[None]] = set()
        self._failures: list[BaseException] = []
        # Sends by start, each with the loop time its confirm is due by (the I/O loop's).
        self._due: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        self._overdue: set[asyncio.Future[None]] = set()  # cancelled by the watch
        self._watch: asyncio.TimerHandle | None = None

    # -- the producer's side (any thread) -------------------------------------------------
    def put(self, message: M) -> None:
        """Queue ``message``; first raise an earlier failure, or wait when the window is full."""
        self.raise_failures()
        while not self._admit():  # other threads may fill it again meanwhile
            self.flush()
        self._queue(message)

    async def put_async(self, message: M) -> None:
        self.raise_failures()
        while not self._admit():
            await self.flush_async()
        self._queue(message)

    def flush(self) -> None:
        if not self.idle:
            self.io.run(self._settle())
        self.raise_failures()

    async def flush_async(self) -> None:
        if not self.idle:
            await self.io.run_async(self._settle())
        self.raise_failures()

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
            return self._in_flight == 0 and not self._work and not self._taking

    def settle_within(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every confirm (at exit; raises on timeout)."""
        self.io.submit(self._settle()).result(timeout)

    def _admit(self) -> bool:
        with self._lock:
            if self._in_flight >= self.window:
                return False
            self._in_flight += 1
            return True

    def _queue(self, message: M) -> None:
        with self._lock:
            self._queued.append(message)
            if self._taking:
                return
            self._taking = True
        self.io.submit(self._take())  # one wake-up of the loop per burst, not per call

    # -- the I/O loop ---------------------------------------------------------------------
    async def _take(self) -> None:
        task = asyncio.current_task()
        assert task is not None  # the I/O loop runs this as a task
        self._work.add(task)  # before anything else: a flush submitted later waits for it
        try:
            while True:
                with self._lock:
                    if not self._queued:
                        self._taking = False
                        return
                    batch = list(self._queued)
                    self._queued.clear()
                try:
                    sends = await self._hand_over(batch)
                except Exception as exc:  # none of the batch was sent: kept, raised later
                    with self._lock:
                        self._in_flight -= len(batch)
                        self._failures.append(exc)
                    continue
                for send in sends:
                    self._work.add(send)
                    send.add_done_callback(self._settled)
                self._watch_confirms(sends)
        finally:
            self._work.discard(task)

    def _watch_confirms(self, sends: list[asyncio.Future[None]]) -> None:
        if self.confirm_timeout is None or not sends:
            return
        loop = asyncio.get_running_loop()
        due = loop.time() + self.confirm_timeout
        self._due.extend((due, send) for send in sends)
        if self._watch is None:
            self._watch = loop.call_later(WATCH_EVERY, self._look)

    def _look(self) -> None:
        """Forget the sends that ended; cancel those past their time. (Every send is looked
        at: confirms may come out of order, and one slow confirm must not keep the many
        that came after it.)"""
        loop = asyncio.get_running_loop()
        now = loop.time()
        waiting: collections.deque[tuple[float, asyncio.Future[None]]] = collections.deque()
        for due, send in self._due:
            if send.done():
                continue
            if due <= now:
                self._overdue.add(send)
                send.cancel()
            else:
                waiting.append((due, send))
        self._due = waiting
        self._watch = loop.call_later(WATCH_EVERY, self._look) if waiting else None

    def _settled(self, send: asyncio.Future[None]) -> None:
        self._work.discard(send)
        if send in self._overdue:
            self._overdue.discard(send)
            error: BaseException | None = BrokerError(
                f"RabbitMQ did not confirm a publish within {self.confirm_timeout} s "
                f"(confirm_timeout): it may not be stored"
            )
        elif send.cancelled():
            error = BrokerError(
                "a publish was cancelled before RabbitMQ confirmed it (the broker was closed)"
            )
        else:
            error = send.exception()
        with self._lock:
            self._in_flight -= 1
            if error is not None:
                self._failures.append(error)

    async def _settle(self) -> None:
        while self._work:
            await asyncio.wait(set(self._work))
