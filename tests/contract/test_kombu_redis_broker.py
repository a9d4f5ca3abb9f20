"""The broker contract, run against the kombu-layout engine on the real Redis (db 15, a
unique ``global_keyprefix`` per test), built as the app builds it for kombu+redis://; and
what is the engine's own: foreign list entries, kombu's reversed priorities, its settings."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis

from celeriac.app.connections import create_broker
from celeriac.brokers.base import Broker, DeadLetterReason, Delivery, OutboundMessage
from celeriac.brokers.kombu_redis import KombuRedisBroker
from celeriac.brokers.kombu_redis.keys import Layout, celeriac_priority, kombu_priority
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured
from celeriac.messages.wire import WireFormat
from celeriac.testing.contracts import BrokerContract, BrokerFactory, ChannelContract
from celeriac.testing.contracts import LeaseContract as HoldLeaseContract
from celeriac.testing.contracts.wire import WireFormatContract


@pytest.fixture
def make_kombu(redis_url: str, redis_prefix: str) -> Iterator[BrokerFactory]:
    made: list[Broker] = []

    def make(
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        wire_format: WireFormat | None = None,
    ) -> Broker:
        broker = create_broker(
            "kombu+" + redis_url,
            {"global_keyprefix": redis_prefix, "visibility_timeout": lease_seconds},
            delivery_limit,
            wire_format=wire_format,
        )
        assert isinstance(broker, KombuRedisBroker)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


class TestKombuRedisBroker(BrokerContract, WireFormatContract):
    @pytest.fixture
    def make_broker(self, make_kombu: BrokerFactory) -> BrokerFactory:
        return make_kombu


class TestKombuRedisChannel(ChannelContract):
    @pytest.fixture
    def make_broker(self, make_kombu: BrokerFactory) -> BrokerFactory:
        return make_kombu


class TestKombuRedisLease(HoldLeaseContract):
    @pytest.fixture
    def make_broker(self, make_kombu: BrokerFactory) -> BrokerFactory:
        return make_kombu


def test_an_entry_that_is_not_a_kombu_message_is_dead_lettered_not_stuck(
    make_kombu: BrokerFactory, redis_url: str, redis_prefix: str
) -> None:
    broker = make_kombu()
    queue = "contract-foreign"
    client = redis.Redis.from_url(redis_url)
    try:
        client.lpush(f"{redis_prefix}{queue}", b"not json", b'{"properties": {}}')
    finally:
        client.close()
    broker.publish(OutboundMessage(queue, b"fine", "m-1"))

    async def take() -> list[Delivery]:
        try:
            return await broker.fetch([queue], 10, 2.0)
        finally:
            await broker.close_async()

    [delivery] = asyncio.run(take())
    assert delivery.payload == b"fine"
    letters = broker.dead_letters(queue)
    assert [(d.reason, d.payload) for d in letters] == [
        (DeadLetterReason.MALFORMED, b"not json"),
        (DeadLetterReason.MALFORMED, b'{"properties": {}}'),
    ]


@pytest.mark.parametrize(
    ("steps", "lists"),
    [
        (
            (0, 3, 6, 9),
            {9: "q", 7: "q", 6: "q\x06\x163", 4: "q\x06\x163", 1: "q\x06\x166", 0: "q\x06\x169"},
        ),
        (tuple(range(10)), {9: "q", 8: "q\x06\x161", 1: "q\x06\x168", 0: "q\x06\x169"}),
    ],
)
def test_priorities_land_on_kombus_lists_reversed(
    steps: tuple[int, ...], lists: dict[int, str]
) -> None:
    layout = Layout(steps=steps)
    for priority, key in lists.items():
        assert layout.list_key("q", layout.step_index(kombu_priority(priority))) == key
        assert celeriac_priority(kombu_priority(priority)) == priority


def test_bad_settings_are_refused_with_the_fix() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"priority_steps .* \[0, 3, 6, 9\]"):
        create_broker("kombu+redis://127.0.0.1:1/0", {"priority_steps": [3, 6]}, 5)
    with pytest.raises(ImproperlyConfigured, match="use kombu\\+rediss://"):
        create_broker("kombu+redis://127.0.0.1:1/0", {}, 5, use_ssl={"ssl_cert_reqs": "none"})
    with pytest.warns(UnknownSettingWarning, match="fanout_prefix"):
        create_broker("kombu+redis://127.0.0.1:1/0", {"fanout_prefix": True}, 5).close()
    broker = create_broker("kombu+redis://127.0.0.1:1/0", {}, 5)
    assert broker.lease_seconds == 3600, "kombu's visibility timeout unless told"
    broker.close()
