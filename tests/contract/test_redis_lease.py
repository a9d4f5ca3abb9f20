"""The lease contract run against the real Redis (db 15, a unique key prefix per test)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.brokers.base import Broker
from celeriac.brokers.redis import RedisBroker
from celeriac.testing.contracts import BrokerFactory, LeaseContract


class TestRedisLease(LeaseContract):
    @pytest.fixture
    def make_broker(self, redis_url: str, redis_prefix: str) -> Iterator[BrokerFactory]:
        made: list[RedisBroker] = []

        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            made.append(RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix}))
            return made[-1]

        yield make
        for broker in made:
            broker.close()
