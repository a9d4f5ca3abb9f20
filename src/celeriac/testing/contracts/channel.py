"""The channel contract: publish/subscribe on a topic, as tests every ``Broker`` engine passes.

Uses only the public channel API (``Topic``, ``publish_topic``, ``publish_topic_async``,
``subscribe``, ``Subscription``), so it runs unchanged against memory, Redis and RabbitMQ;
an engine's test class may override ``held`` to show that a closed subscription freed what
it held. Imports ``celeriac.brokers.base``, pytest and the stdlib; never an engine.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from celeriac.brokers.base import Broker, ChannelKind, Subscription, Topic
from celeriac.testing.contracts.broker import BrokerFactory

WAIT = 5.0  # seconds a payload may take to arrive


def _in_event_loop(
    test: Callable[..., Coroutine[Any, Any, None]],
) -> Callable[..., None]:
    """Run an async test body with ``asyncio.run``; each broker it made closes its async face
    on that loop afterwards."""

    @functools.wraps(test)
    def run(self: Any, make_broker: BrokerFactory, **params: Any) -> None:
        made: list[Broker] = []

        def tracking(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            made.append(make_broker(lease_seconds=lease_seconds, delivery_limit=delivery_limit))
            return made[-1]

        async def body() -> None:
            try:
                await test(self, tracking, **params)
            finally:
                for broker in made:
                    await broker.close_async()

        asyncio.run(body())

    return run


def _topic(kind: str = "broadcast", keep: int = 1000) -> Topic:
    return Topic(f"contract.{uuid.uuid4().hex[:12]}", ChannelKind(kind), keep)


async def _received(subscription: Subscription, count: int) -> list[bytes]:
    got: list[bytes] = []
    while len(got) < count:
        payload = await subscription.get(WAIT)
        assert payload is not None, f"only {got!r} arrived within {WAIT} s"
        got.append(payload)
    return got


class ChannelContract:
    """Subclass with a ``make_broker`` fixture (a ``BrokerFactory``), as ``BrokerContract``."""

    async def held(self, broker: Broker, topic: Topic) -> int | None:
        """Subscriptions the engine still serves for ``topic``; None: not observable."""
        return None

    @pytest.mark.parametrize("kind", ["broadcast", "stream"])
    @_in_event_loop
    async def test_a_subscriber_gets_what_is_published_after_it_in_order(
        self, make_broker: BrokerFactory, kind: str
    ) -> None:
        broker, topic = make_broker(), _topic(kind)
        broker.publish_topic(topic, b"before")  # before anyone subscribed: not handed out
        async with await broker.subscribe(topic) as subscription:
            # Both faces: sync from another thread (a web process), async from this loop.
            await asyncio.to_thread(broker.publish_topic, topic, b"1")
            await broker.publish_topic_async(topic, b"2")
            await asyncio.to_thread(broker.publish_topic, topic, b"3")
            await broker.publish_topic_async(topic, b"4")
            assert await _received(subscription, 4) == [b"1", b"2", b"3", b"4"]
            assert await subscription.get(0.2) is None

    @pytest.mark.parametrize("kind", ["broadcast", "stream"])
    @_in_event_loop
    async def test_every_subscriber_gets_every_payload(
        self, make_broker: BrokerFactory, kind: str
    ) -> None:
        broker, topic = make_broker(), _topic(kind)
        first = await broker.subscribe(topic)
        second = await make_broker().subscribe(topic)  # another process's connection
        try:
            for n in range(3):
                await broker.publish_topic_async(topic, b"%d" % n)
            expected = [b"0", b"1", b"2"]
            assert await _received(first, 3) == expected
            assert await _received(second, 3) == expected
        finally:
            await first.close()
            await second.close()

    @pytest.mark.parametrize("kind", ["broadcast", "stream"])
    @_in_event_loop
    async def test_a_closed_subscription_hears_nothing_and_holds_nothing(
        self, make_broker: BrokerFactory, kind: str
    ) -> None:
        broker, topic = make_broker(), _topic(kind)
        subscription = await broker.subscribe(topic)
        stays = await broker.subscribe(topic)
        await subscription.close()
        await subscription.close()  # once is enough
        assert subscription.closed
        broker.publish_topic(topic, b"after")
        assert await _received(stays, 1) == [b"after"], "the other subscriber still hears"
        assert await subscription.get(0.2) is None
        assert [payload async for payload in subscription] == []
        await stays.close()
        give_up = asyncio.get_running_loop().time() + WAIT  # a server notices a close soon
        while (held := await self.held(broker, topic)) not in (None, 0):
            assert asyncio.get_running_loop().time() < give_up, f"{held} still served"
            await asyncio.sleep(0.02)

    @_in_event_loop
    async def test_a_stream_keeps_a_history_for_a_late_subscriber(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, topic = make_broker(), _topic("stream")
        for n in range(3):
            broker.publish_topic(topic, b"old-%d" % n)
        late = await make_broker().subscribe(topic, history=True)
        live_only = await broker.subscribe(topic)
        try:
            await broker.publish_topic_async(topic, b"new")
            assert await _received(late, 4) == [b"old-0", b"old-1", b"old-2", b"new"]
            assert await _received(live_only, 1) == [b"new"]
        finally:
            await late.close()
            await live_only.close()

    @_in_event_loop
    async def test_bad_input_is_refused_with_the_fix(self, make_broker: BrokerFactory) -> None:
        broker = make_broker()
        with pytest.raises(ValueError, match="topic name"):
            Topic("no spaces allowed")
        with pytest.raises(ValueError, match="'broadcast' or 'stream'"):
            Topic("t", "queue")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="keeps no history"):
            await broker.subscribe(_topic(), history=True)
        with pytest.raises(TypeError, match="bytes"):
            broker.publish_topic(_topic(), "text")  # type: ignore[arg-type]
