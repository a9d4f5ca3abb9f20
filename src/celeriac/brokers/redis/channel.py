"""The channel on Redis: a broadcast topic is a pub/sub channel, a stream topic a capped stream.

    {prefix}:topic:<name>     broadcast: PUBLISH / SUBSCRIBE; nothing is stored
    {prefix}:stream:<name>    stream: XADD MAXLEN ~ keep (field p = payload), read with XREAD

A subscription follows its topic in a task on the subscriber's loop. A broadcast one holds
its own pub/sub connection and PINGs it when idle; when the connection fails, it opens a
new one (``open_pubsub``: on a cluster, to any node that answers, since a PUBLISH reaches
every node) and subscribes again, after which the subscription is live once more. A stream
one reads with a bounded XREAD BLOCK from the last entry it handed out, so
after an outage it resumes where it was. Its reads block at most ``STREAM_BLOCK``: a
cancelled read still waits for its reply, so that bounds how long ``close`` takes.
Engine helper: imports ``brokers.base``, ``_redis`` and redis-py; never the app or other
engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio.client

from celeriac._redis import UNAVAILABLE
from celeriac.brokers.base import ChannelKind, Subscription, Topic
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.brokers.redis")
_DOWN: tuple[type[Exception], ...] = (*UNAVAILABLE, BrokerConnectionError)
KEEPALIVE = 15.0  # seconds of silence before a broadcast subscription PINGs its connection
SUBSCRIBE_TIMEOUT = 10.0  # seconds to wait for Redis to confirm the subscription
MAX_PAUSE = 5.0  # longest wait between attempts while Redis is unreachable
READ_COUNT = 500  # stream entries per XREAD
STREAM_BLOCK = 1.0  # seconds one XREAD waits for new entries
Down = Callable[[Exception], BrokerConnectionError]
# Makes a pub/sub connection, connected now, subscribed to nothing.
OpenPubSub = Callable[[], Awaitable[redis.asyncio.client.PubSub]]


def topic_key(prefix: str, topic: Topic) -> str:
    """The pub/sub channel (broadcast) or the stream key (stream) of ``topic``."""
    where = "stream" if topic.kind is ChannelKind.STREAM else "topic"
    return f"{prefix}:{where}:{topic.name}"


def stage_publish(target: Any, prefix: str, topic: Topic, payload: bytes) -> Any:
    """The one command that publishes ``payload`` (sync or async client)."""
    key = topic_key(prefix, topic)
    if topic.kind is ChannelKind.STREAM:
        return target.xadd(key, {"p": payload}, maxlen=topic.keep, approximate=True)
    return target.publish(key, payload)


class _Follower(Subscription):
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
            except _DOWN as exc:
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
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class PubSubSubscription(_Follower):
    """A broadcast topic, on a pub/sub connection of its own; a new one after a failure."""

    def __init__(self, topic: Topic, open_pubsub: OpenPubSub, key: str, down: Down) -> None:
        super().__init__(topic, down)
        self._open, self._key = open_pubsub, key
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
        except _DOWN:
            await self._drop()
            raise
        if message["type"] == "subscribe":  # subscribed again on the same connection
            self.resumed()
        elif message["type"] == "message":
            self.deliver(bytes(message["data"]))

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def _stop(self) -> None:
        await self._end_task()
        await self._drop()


class StreamSubscription(_Follower):
    """A stream topic: reads after the last entry handed out, on the loop's client."""

    def __init__(
        self, topic: Topic, client: redis.asyncio.Redis, key: str, block: float, down: Down
    ) -> None:
        super().__init__(topic, down)
        self._client, self._key, self._block = client, key, block
        self._last: Any = "0-0"
        self._outage = False

    async def start(self, history: bool) -> None:
        if history:
            rows = await self._client.xrange(self._key, "-", "+")
            self._hand_out(rows)
        else:  # from the newest entry now: what is added after this returns
            rows = await self._client.xrevrange(self._key, "+", "-", count=1)
            if rows:
                self._last = rows[0][0]
        self._begin()

    def _hand_out(self, rows: Any) -> None:
        for entry_id, fields in rows:
            self.deliver(bytes(fields[b"p"]))
            self._last = entry_id

    async def _read(self) -> None:
        try:
            reply = await self._client.xread(
                {self._key: self._last}, count=READ_COUNT, block=max(1, int(self._block * 1000))
            )
        except _DOWN:
            self._outage = True
            raise
        if self._outage:
            self._outage = False
            self.resumed()
        streams: Any = reply or []
        for _, rows in streams:
            self._hand_out(rows)

    async def _stop(self) -> None:
        await self._end_task()  # (within STREAM_BLOCK: redis-py lets a blocked read finish)


async def open_subscription(
    client: redis.asyncio.Redis,
    open_pubsub: OpenPubSub,
    prefix: str,
    topic: Topic,
    history: bool,
    block_cap: float | None,
    down: Down,
) -> Subscription:
    """A live subscription to ``topic``; ``block_cap`` keeps a read within the socket timeout;
    ``open_pubsub`` makes the connection of a broadcast subscription (again after a loss)."""
    key = topic_key(prefix, topic)
    if topic.kind is ChannelKind.STREAM:
        block = min(STREAM_BLOCK, block_cap or STREAM_BLOCK)
        stream = StreamSubscription(topic, client, key, block, down)
        await stream.start(history)
        return stream
    broadcast = PubSubSubscription(topic, open_pubsub, key, down)
    await broadcast.start()
    return broadcast
