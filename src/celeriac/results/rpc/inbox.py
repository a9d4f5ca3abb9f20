"""The client's side of ``rpc://``: the states it received, and the thread that receives them.

``Inbox`` keeps the last state of each call, in memory, for ``expires`` seconds after it
arrived, and wakes whoever waits for a call to be ready. ``ReplyListener`` follows the
client's reply topic on an event loop of its own, in a daemon thread, and files each
reply. Imports ``brokers.base`` (the channel seam) and leaves, never an engine.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Callable

from celeriac.brokers.base import Broker, Subscription, Topic
from celeriac.exceptions import BackendConnectionError, BrokerConnectionError

logger = logging.getLogger("celeriac.results.rpc")
# How long ``stop`` lets the listener thread close its subscription.
STOP_GRACE = 10.0


class Inbox:
    """The last record received per key, each with whether it is ready (a final state)."""

    def __init__(self, expires: float | None, clock: Callable[[], float] = time.monotonic):
        self.expires = expires
        self._clock = clock
        # key -> (record, ready, arrival); ordered by arrival, so expiry trims the front.
        self._records: collections.OrderedDict[str, tuple[bytes, bool, float]] = (
            collections.OrderedDict()
        )
        self._changed = threading.Condition()
        self._closings = 0  # raised by close(): waiters from before it are woken with an error

    def put(self, key: str, record: bytes, ready: bool) -> None:
        with self._changed:
            self._records.pop(key, None)
            now = self._clock()
            self._records[key] = (record, ready, now)
            self._trim(now)
            if ready:
                self._changed.notify_all()

    def _trim(self, now: float) -> None:
        """Forget what arrived more than ``expires`` ago (lock held)."""
        if self.expires is None:
            return
        while self._records:
            _, (_, _, arrival) = next(iter(self._records.items()))
            if now - arrival < self.expires:
                return
            self._records.popitem(last=False)

    def _alive(self, key: str) -> tuple[bytes, bool] | None:
        entry = self._records.get(key)
        if entry is None:
            return None
        record, ready, arrival = entry
        if self.expires is not None and self._clock() - arrival >= self.expires:
            del self._records[key]
            return None
        return record, ready

    def get(self, key: str) -> bytes | None:
        with self._changed:
            found = self._alive(key)
            return None if found is None else found[0]

    def delete(self, key: str) -> None:
        with self._changed:
            self._records.pop(key, None)

    def clear(self) -> None:
        with self._changed:
            self._records.clear()

    def wait(self, key: str, timeout: float | None) -> bytes | None:
        """The ready record at ``key``, waiting up to ``timeout`` seconds for it; None
        after that. ``close`` wakes the wait with ``BackendConnectionError``."""
        with self._changed:
            closings = self._closings

            def ready_or_closed() -> bool:
                found = self._alive(key)
                return self._closings != closings or (found is not None and found[1])

            if not self._changed.wait_for(ready_or_closed, timeout):
                return None
            if self._closings != closings:
                raise BackendConnectionError(
                    f"the rpc:// result backend was closed while waiting for {key}; close "
                    f"the app only after its results were collected"
                )
            found = self._alive(key)
            return None if found is None else found[0]

    def close(self) -> None:
        with self._changed:
            self._closings += 1
            self._changed.notify_all()


class ReplyListener:
    """Follows one reply topic from a thread with its own event loop (a ``Subscription``
    hands its payloads out on the loop that subscribed), calling ``on_reply`` for each."""

    def __init__(self, broker: Broker, topic: Topic, on_reply: Callable[[bytes], None]) -> None:
        self.broker = broker
        self.topic = topic
        self._on_reply = on_reply
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscription: Subscription | None = None
        self._thread = threading.Thread(
            target=self._run, name=f"celeriac-rpc-{topic.name}", daemon=True
        )

    def start(self) -> None:
        """Subscribe, and return once the broker delivers to this topic (a reply published
        from now on reaches the inbox); raise the broker's error when it cannot."""
        self._thread.start()
        self._started.wait()
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        """Close the subscription (RabbitMQ: the reply queue goes) and end the thread."""
        loop, subscription = self._loop, self._subscription
        if loop is not None and subscription is not None and self._thread.is_alive():
            closing = asyncio.run_coroutine_threadsafe(subscription.close(), loop)
            try:
                closing.result(STOP_GRACE)
            except Exception as exc:  # the loop ended meanwhile, or the broker is gone
                logger.debug("closing the reply topic %s: %r", self.topic.name, exc)
        self._thread.join(STOP_GRACE)
        if self._thread.is_alive():
            logger.warning("the rpc:// reply listener %s did not stop", self._thread.name)

    def _run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        self._loop = asyncio.get_running_loop()
        try:
            try:
                self._subscription = await self.broker.subscribe(self.topic)
            except BaseException as exc:
                self._error = exc
                return
            finally:
                self._started.set()
            await self._read(self._subscription)
        finally:
            await self.broker.close_async()  # what the broker holds for this loop

    async def _read(self, subscription: Subscription) -> None:
        while True:
            try:
                payload = await subscription.get()
            except BrokerConnectionError as exc:
                logger.warning(
                    "rpc:// replies: lost the broker connection (%s); states sent to this "
                    "client until it is back are lost",
                    exc,
                )
                await subscription.wait_live()
                if not subscription.closed:
                    logger.info("rpc:// replies: receiving again")
                continue
            if payload is None:  # closed
                return
            try:
                self._on_reply(payload)
            except Exception:  # one bad reply must not end the listener
                logger.exception("rpc:// replies: could not file a reply")
