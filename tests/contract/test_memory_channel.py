"""The channel contract run against ``MemoryBroker`` (in-process fan-out)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.brokers.base import Broker, Topic
from celeriac.brokers.memory import MemoryBroker
from celeriac.testing.contracts import BrokerFactory, ChannelContract


class TestMemoryChannel(ChannelContract):
    @pytest.fixture
    def make_broker(self) -> Iterator[BrokerFactory]:
        shared = MemoryBroker()  # one process: every "connection" is the same instance

        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return shared

        yield make

    async def held(self, broker: Broker, topic: Topic) -> int | None:
        state = broker._topics.get(topic.name)
        return 0 if state is None else len(state.subscribers)


def test_a_stream_keeps_only_its_last_payloads() -> None:
    import asyncio

    broker, topic = MemoryBroker(), Topic("events", "stream", keep=3)
    for n in range(10):
        broker.publish_topic(topic, b"%d" % n)

    async def history() -> list[bytes]:
        async with await broker.subscribe(topic, history=True) as subscription:
            return [p for _ in range(3) if (p := await subscription.get(1.0)) is not None]

    assert asyncio.run(history()) == [b"7", b"8", b"9"]
