"""The lease contract run against the real RabbitMQ (a vhost per session, a namespace per
test): an exclusive queue per lease, held by a connection of the holder's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import Broker
from celeriac.testing.contracts import BrokerFactory, LeaseContract


class TestAmqpLease(LeaseContract):
    @pytest.fixture
    def make_broker(self, amqp_url: str, amqp_namespace: str) -> Iterator[BrokerFactory]:
        made: list[AmqpBroker] = []

        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            made.append(AmqpBroker(amqp_url, transport_options={"namespace": amqp_namespace}))
            return made[-1]

        yield make
        for broker in made:
            broker.close()

    def abandon(self, broker: Broker) -> None:
        broker.close()  # a dead process: its connections close, RabbitMQ frees the lease
