"""The channel contract run against the real Redis (db 15, a unique key prefix per test):
pub/sub for broadcast topics, capped streams for stream topics."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from celeriac.brokers.base import Broker, Topic
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis.channel import topic_key
from celeriac.testing.contracts import BrokerFactory, ChannelContract


@pytest.fixture
def make_redis(redis_url: str, redis_prefix: str) -> Iterator[BrokerFactory]:
    made: list[RedisBroker] = []

    def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
        made.append(RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix}))
        return made[-1]

    yield make
    for broker in made:
        broker.close()


class TestRedisChannel(ChannelContract):
    @pytest.fixture
    def make_broker(self, make_redis: BrokerFactory) -> BrokerFactory:
        return make_redis

    async def held(self, broker: Broker, topic: Topic) -> int | None:
        assert isinstance(broker, RedisBroker)
        if topic.kind != "broadcast":
            return None  # a stream subscription holds no connection between reads
        key = topic_key(broker.prefix, topic)
        return int(dict(broker.client.pubsub_numsub(key))[key.encode()])


def test_a_stream_topic_is_capped(make_redis: BrokerFactory) -> None:
    broker = make_redis()
    assert isinstance(broker, RedisBroker)
    topic = Topic("events", "stream", keep=100)
    for n in range(1000):
        broker.publish_topic(topic, b"%d" % n)
    kept = broker.client.xlen(topic_key(broker.prefix, topic))
    assert 100 <= kept < 300, "MAXLEN ~ trims whole nodes: about keep, never unbounded"

    async def newest() -> bytes | None:
        try:
            async with await broker.subscribe(topic, history=True) as subscription:
                return [await subscription.get(1.0) for _ in range(kept)][-1]
        finally:  # the broker's client on this loop closes with the loop, not after it
            await broker.close_async()

    assert asyncio.run(newest()) == b"999"
