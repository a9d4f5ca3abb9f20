"""The broker contract, run against the real RabbitMQ (a vhost per session, a namespace and
unique queue names per test), on classic queues and on quorum queues, each declared as
celeriac declares them and as kombu does (``SharedQueues``: ``wire_format = "celery"``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp.topology import SharedQueues
from celeriac.brokers.base import Broker
from celeriac.messages.wire import WireFormat
from celeriac.testing.contracts import BrokerContract, BrokerFactory
from celeriac.testing.contracts.wire import WireFormatContract


class TestAmqpBroker(BrokerContract, WireFormatContract):
    queue_type = "classic"
    shared: SharedQueues | None = None

    @pytest.fixture
    def make_broker(self, amqp_url: str, amqp_namespace: str) -> Iterator[BrokerFactory]:
        made: list[AmqpBroker] = []

        def make(
            lease_seconds: float = 30.0,
            delivery_limit: int = 5,
            wire_format: WireFormat | None = None,
        ) -> Broker:
            broker = AmqpBroker(
                amqp_url,
                lease_seconds=lease_seconds,
                delivery_limit=delivery_limit,
                transport_options={"namespace": amqp_namespace, "queue_type": self.queue_type},
                wire_format=wire_format,
                **({} if self.shared is None else {"shared_queues": self.shared}),
                **({} if self.shared is None else {"max_priority": None}),
            )
            made.append(broker)
            return broker

        yield make
        for broker in made:
            broker.close()


class TestAmqpQuorumBroker(TestAmqpBroker):
    queue_type = "quorum"


class TestAmqpSharedQueues(TestAmqpBroker):
    """Queues as Celery declares them: no arguments, no priorities (first in, first out)."""

    shared = SharedQueues()


class TestAmqpSharedQuorumQueues(TestAmqpBroker):
    """Quorum queues as Celery declares them: ``x-queue-type`` only."""

    queue_type = "quorum"
    shared = SharedQueues(missing_arguments={"x-queue-type": "quorum"})
