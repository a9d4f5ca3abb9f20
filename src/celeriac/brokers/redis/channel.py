"""The channel on Redis: a broadcast topic is a pub/sub channel, a stream topic a capped stream.

    {prefix}:topic:<name>     broadcast: PUBLISH / SUBSCRIBE; nothing is stored
    {prefix}:stream:<name>    stream: XADD MAXLEN ~ keep (field p = payload), read with XREAD

A subscription follows its topic in a task on the subscriber's loop. A broadcast one holds
its own pub/sub connection (``_redis_pubsub``, which the kombu-layout engine shares). A stream
one reads with a bounded XREAD BLOCK from the last entry it handed out, so
after an outage it resumes where it was. Its reads block at most ``STREAM_BLOCK``: a
cancelled read still waits for its reply, so that bounds how long ``close`` takes.
Engine helper: imports ``brokers.base``, ``_redis`` and redis-py; never the app or other
engines.
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio.client

from celeriac._redis_pubsub import DOWN, Down, Follower, OpenPubSub, PubSubSubscription
from celeriac.brokers.base import ChannelKind, Subscription, Topic

READ_COUNT = 500  # stream entries per XREAD
STREAM_BLOCK = 1.0  # seconds one XREAD waits for new entries


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


class StreamSubscription(Follower):
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
        except DOWN:
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
