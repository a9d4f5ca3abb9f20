"""Following a Redis pub/sub channel: a subscription of the channel seam fed by a task on
the subscriber's loop, with its own pub/sub connection, PINGed when idle; when the
connection fails it opens a new one (``open_pubsub``: on a cluster, to any node that
answers, since a PUBLISH reaches every node) and subscribes again, after which the
subscription is live once more. ``Follower`` is the loop (a stream subscription reads in
it too). Shared by both Redis engines; imports ``brokers.base``, ``_redis`` and redis-py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable

import redis
import redis.asyncio.client

from celeriac._futures import cancel_and_wait
from celeriac._redis import UNAVAILABLE
from celeriac.brokers.base import Subscription, Topic
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.brokers.redis")
DOWN: tuple[type[Exception], ...] = (*UNAVAILABLE, BrokerConnectionError)
KEEPALIVE = 15.0  # seconds of silence before a broadcast subscription PINGs its connection
SUBSCRIBE_TIMEOUT = 10.0  # seconds to wait for Redis to confirm the subscription
MAX_PAUSE = 5.0  # longest wait between attempts while Redis is unreachable

Down = Callable[[Exception], BrokerConnectionError]
# Makes a pub/sub connection, connected now, subscribed to nothing.
OpenPubSub = Callable[[], Awaitable[redis.asyncio.client.PubSub]]
# What a subscriber gets of one message's data (None: nothing, the message is skipped).
Unwrap = Callable[[bytes], bytes | None]


class Follower(Subscription):
    """A subscription fed by one task on its loop; ``_read`` is one step of it."""

    def __init__(self, topic: Topic, down: Down) -> None:
        super().__init__(topic)
        self._down_error = down
        self._task: asyncio.Task[None] | None = None

    def _begin(self) -> None:
        self._task = asyncio.create_task(self._follow(), name=f"celeriac-topic-{self.topic.name}")

    @abstractmethod
    async def _read(self) -> None:
        """Read once and hand out what came; raise a connection error when the link broke."""

    async def _follow(self) -> None:
        pause = 0.1
        while not self.closed:  # (redis-py may turn the cancel of close() into an error)
            try:
                await self._read()
                pause = 0.1
                continue
            except DOWN as exc:
                if self.closed:
                    return
                logger.debug("topic %s: Redis is unreachable (%s)", self.topic.name, exc)
                self.lost(exc if isinstance(exc, BrokerConnectionError) else self._down_error(exc))
            except Exception:  # the subscription must outlive any one reply
                logger.exception("topic %s: unexpected error", self.topic.name)
            await asyncio.sleep(pause)  # back off before reading (and reconnecting) again
            pause = min(pause * 2, MAX_PAUSE)

    async def _end_task(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)


class PubSubSubscription(Follower):
    """A broadcast topic, on a pub/sub connection of its own; a new one after a failure."""

    def __init__(
        self,
        topic: Topic,
        open_pubsub: OpenPubSub,
        key: str,
        down: Down,
        unwrap: Unwrap | None = None,
    ) -> None:
        super().__init__(topic, down)
        self._open, self._key, self._unwrap = open_pubsub, key, unwrap
        self._pubsub: redis.asyncio.client.PubSub | None = None

    async def start(self) -> None:
        """Subscribe and wait for Redis to confirm it, then follow in the background."""
        self._pubsub = await self._subscribe()
        self._begin()

    async def _subscribe(self) -> redis.asyncio.client.PubSub:
        pubsub = await self._open()
        try:
            await pubsub.subscribe(self._key)
            loop = asyncio.get_running_loop()
            give_up = loop.time() + SUBSCRIBE_TIMEOUT
            while (left := give_up - loop.time()) > 0:
                message = await pubsub.get_message(timeout=left)
                if message is not None and message["type"] == "subscribe":
                    return pubsub
            raise redis.TimeoutError(f"Redis did not confirm SUBSCRIBE {self._key}")
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
            raise

    async def _read(self) -> None:
        if self._pubsub is None:  # the last connection failed: a new one, subscribed again
            self._pubsub = await self._subscribe()
            self.resumed()
            return
        try:
            message = await self._pubsub.get_message(timeout=KEEPALIVE)
            if message is None:
                await self._pubsub.ping()  # the reply (a "pong" message) proves the link
                return
        except DOWN:
            await self._drop()
            raise
        if message["type"] == "subscribe":  # subscribed again on the same connection
            self.resumed()
        elif message["type"] == "message":
            data = bytes(message["data"])
            payload = data if self._unwrap is None else self._unwrap(data)
            if payload is not None:
                self.deliver(payload)

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _stop(self) -> None:
        await self._end_task()
        await self._drop()


__all__ = ["DOWN", "Down", "Follower", "OpenPubSub", "PubSubSubscription", "Unwrap"]
