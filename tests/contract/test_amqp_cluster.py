"""The broker, channel and lease contracts against a real three-node RabbitMQ cluster that
this module starts, through a broker URL that lists every node (quorum queues, the default
there; streams and exclusive queues for the channel and leases). Long: the cluster's
replication makes each test slower than on one node; test_rabbitmq_cluster.py is the
short form."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import Broker
from celeriac.messages.wire import WireFormat
from celeriac.testing.contracts import BrokerContract, BrokerFactory, ChannelContract, LeaseContract
from tests.integration.rabbitmq_cluster import (  # noqa: F401 (rabbit_cluster: a fixture)
    LocalRabbitCluster,
    rabbit_cluster,
)

pytestmark = pytest.mark.long


@pytest.fixture
def make_cluster_broker(
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    amqp_namespace: str,
) -> Iterator[Callable[..., AmqpBroker]]:
    made: list[AmqpBroker] = []

    def make(
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        wire_format: WireFormat | None = None,
    ) -> AmqpBroker:
        broker = AmqpBroker(
            rabbit_cluster.url,
            lease_seconds=lease_seconds,
            delivery_limit=delivery_limit,
            transport_options={"namespace": amqp_namespace, "failover_strategy": "shuffle"},
            wire_format=wire_format,
        )
        assert broker.queue_type == "quorum"  # several nodes: the default
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


class TestAmqpClusterBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., AmqpBroker]) -> BrokerFactory:
        return make_cluster_broker


class TestAmqpClusterChannel(ChannelContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., AmqpBroker]) -> BrokerFactory:
        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return make_cluster_broker(lease_seconds, delivery_limit)

        return make


class TestAmqpClusterLease(LeaseContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., AmqpBroker]) -> BrokerFactory:
        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return make_cluster_broker(lease_seconds, delivery_limit)

        return make

    def abandon(self, broker: Broker) -> None:
        broker.close()  # a dead process: its connections close, RabbitMQ frees the lease
