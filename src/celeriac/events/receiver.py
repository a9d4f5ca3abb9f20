"""``EventReceiver``: follows the events topic and hands each event to its handler
(Celery's receiver: ``handlers`` by event type, ``"*"`` for the others).

Each event gets ``local_received`` (this process's time) and a ``clock`` adjusted to this
process's Lamport clock. ``wakeup=True`` starts with the latest event of every worker the
stream still keeps, so a ``State`` knows the cluster at once (Celery asks every worker for
a heartbeat instead); ``history=True`` starts with every event the stream keeps. Replayed
events keep their send time as ``local_received``, so an old heartbeat does not make a
dead worker look alive. ``capture`` blocks (a loop of its own); ``aitercapture`` is the
same on the caller's loop. Imports ``brokers.base``, ``exceptions`` and ``events.event``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any

from celeriac.brokers.base import Broker, Subscription, Topic
from celeriac.events.event import LamportClock, decode
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.events")
Handler = Callable[[dict[str, Any]], Any]
WAKEUP_IDLE = 0.3  # seconds without a kept payload that end the wakeup replay
WAKEUP_MAX = 5.0  # seconds the wakeup replay may take at most
# A kept event (history=True) sent this long before the receiver started counts as
# replayed: its send time stands for its arrival, so an old heartbeat proves nothing.
STALE_AFTER = 6.0


class EventReceiver:
    """Receives events from ``broker`` on ``topic``: ``handlers`` maps an event type (or
    ``"*"``) to a callable taking the event dict."""

    def __init__(
        self,
        broker: Broker,
        topic: Topic,
        handlers: Mapping[str, Handler] | None = None,
        *,
        history: bool = False,
        clock: LamportClock | None = None,
    ) -> None:
        self.broker, self.topic = broker, topic
        self.handlers: dict[str, Handler] = dict(handlers or {})
        self.history = history
        self.clock = clock or LamportClock()
        self.should_stop = False  # set it (from a handler) to end the capture
        self._since = time.time()  # when the current capture subscribed

    def process(self, type_: str, event: dict[str, Any]) -> None:
        """Hand ``event`` to the handler of its type, else to ``"*"``."""
        handler = self.handlers.get(type_) or self.handlers.get("*")
        if handler is not None:
            handler(event)

    def event_from_message(
        self, event: dict[str, Any], *, replayed: bool = False
    ) -> dict[str, Any]:
        """The event as handlers see it: ``local_received`` and an adjusted ``clock``."""
        clock = event.get("clock")
        event["clock"] = self.clock.forward() if clock is None else self.clock.adjust(clock)
        now = time.time()
        stamp = event.get("timestamp")
        event["local_received"] = min(now, stamp) if replayed and stamp else now
        return event

    # -- the blocking face ----------------------------------------------------------------
    def capture(self, limit: int | None = None, timeout: float | None = None,
                wakeup: bool = True) -> None:  # fmt: skip
        """Receive and handle events until ``limit`` were handled, ``should_stop`` is set,
        or (``TimeoutError``) none arrived for ``timeout`` seconds."""
        for _ in self.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
            pass

    def itercapture(self, limit: int | None = None, timeout: float | None = None,
                    wakeup: bool = True) -> Iterator[dict[str, Any]]:  # fmt: skip
        """``capture``, yielding each event once it was handled."""
        loop = asyncio.new_event_loop()
        events = self.aitercapture(limit=limit, timeout=timeout, wakeup=wakeup)
        try:
            while True:
                try:
                    yield loop.run_until_complete(events.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(events.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    # -- the asyncio face -----------------------------------------------------------------
    async def aitercapture(
        self, limit: int | None = None, timeout: float | None = None, wakeup: bool = True
    ) -> AsyncGenerator[dict[str, Any], None]:
        """``itercapture`` for code running on an event loop."""
        self.should_stop = False
        self._since = time.time()
        subscription = await self.broker.subscribe(self.topic, history=self.history)
        handled = 0
        try:
            if wakeup and not self.history:
                for event in await self._latest_worker_events():
                    yield self._handle(event, replayed=True)
                    handled += 1
                    if self._done(handled, limit):
                        return
            while not self._done(handled, limit):
                for event, replayed in await self._next(subscription, timeout):
                    yield self._handle(event, replayed=replayed)
                    handled += 1
                    if self._done(handled, limit):
                        return
        finally:
            await subscription.close()

    def _done(self, handled: int, limit: int | None) -> bool:
        return self.should_stop or (limit is not None and handled >= limit)

    def _handle(self, event: dict[str, Any], *, replayed: bool) -> dict[str, Any]:
        event = self.event_from_message(event, replayed=replayed)
        self.process(str(event["type"]), event)
        return event

    async def _next(self, subscription: Subscription,
                    timeout: float | None) -> list[tuple[dict[str, Any], bool]]:  # fmt: skip
        """The events of the next payload, each with whether it is replayed (history)."""
        while True:
            try:
                payload = await subscription.get(timeout)
            except BrokerConnectionError as exc:
                logger.warning("event stream interrupted (resuming): %s", exc)
                await subscription.wait_live()
                continue
            if payload is None:
                if subscription.closed:
                    return []
                raise TimeoutError(f"no event within {timeout} seconds")
            try:
                events = decode(payload)
            except ValueError as exc:
                logger.warning("skipped a payload that is not events: %s", exc)
                continue
            stale = self._since - STALE_AFTER if self.history else 0.0
            return [(event, _sent_at(event) < stale) for event in events]

    async def _latest_worker_events(self) -> list[dict[str, Any]]:
        """The newest event of each worker among those the stream keeps."""
        latest: dict[str, dict[str, Any]] = {}
        replay = await self.broker.subscribe(self.topic, history=True)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + WAKEUP_MAX
        try:
            while loop.time() < give_up:
                try:
                    payload = await replay.get(WAKEUP_IDLE)
                except BrokerConnectionError:
                    break
                if payload is None:
                    break
                try:
                    events = decode(payload)
                except ValueError:
                    continue
                for event in events:
                    if str(event["type"]).startswith("worker-") and event.get("hostname"):
                        latest[str(event["hostname"])] = event
        finally:
            await replay.close()
        return sorted(latest.values(), key=lambda event: float(event.get("timestamp") or 0))


def _sent_at(event: dict[str, Any]) -> float:
    stamp = event.get("timestamp")
    return float(stamp) if isinstance(stamp, (int, float)) else 0.0


__all__ = ["EventReceiver"]
