"""The lease contract run against ``MemoryBroker`` (one instance stands for the cluster)."""

from __future__ import annotations

import pytest

from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.testing.contracts import BrokerFactory, LeaseContract


class TestMemoryLease(LeaseContract):
    @pytest.fixture
    def make_broker(self) -> BrokerFactory:
        shared = MemoryBroker()

        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return shared

        return make
