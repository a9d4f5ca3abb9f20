"""The broker contract, run against the real Redis (db 15, a unique key prefix per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.brokers.base import Broker
from celeriac.brokers.redis import RedisBroker
from celeriac.messages.wire import WireFormat
from celeriac.testing.contracts import BrokerContract, BrokerFactory
from celeriac.testing.contracts.wire import WireFormatContract


class TestRedisBroker(BrokerContract, WireFormatContract):
    @pytest.fixture
    def make_broker(self, redis_url: str, redis_prefix: str) -> Iterator[BrokerFactory]:
        made: list[RedisBroker] = []

        def make(
            lease_seconds: float = 30.0,
            delivery_limit: int = 5,
            wire_format: WireFormat | None = None,
        ) -> Broker:
            broker = RedisBroker(
                redis_url,
                lease_seconds=lease_seconds,
                delivery_limit=delivery_limit,
                transport_options={"key_prefix": redis_prefix},
                wire_format=wire_format,
            )
            made.append(broker)
            return broker

        yield make
        for broker in made:
            broker.close()
