"""The broker contract, run against the kombu-layout engine on the real Redis (db 15, a
unique ``global_keyprefix`` per test), built as the app builds it for kombu+redis://."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.app.connections import create_broker
from celeriac.brokers.base import Broker
from celeriac.brokers.kombu_redis import KombuRedisBroker
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
