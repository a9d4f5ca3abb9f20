"""Brokers under fault, each a server the harness owns on spare ports and can crash and
start again: a redis-server (AOF ``everysec`` or no persistence), a RabbitMQ node (classic
or quorum queues), a Redis Cluster of three masters and three replicas, and a RabbitMQ
cluster of three nodes (quorum queues)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.chaos.servers import RedisServer
from tests.integration.rabbitmq_cluster_nodes import LocalRabbitCluster, dead_letter_retry
from tests.integration.rabbitmq_node import RabbitNode
from tests.integration.redis_cluster_servers import LocalCluster, start_cluster

# The queue every chaos task goes to: the one whose master or leader a cluster fault hits.
CHAOS_QUEUE = "celery"


class BrokerUnderTest(Protocol):
    name: str  # for the report, e.g. "redis (aof everysec)"
    kind: str  # "redis" or "rabbitmq": how a system configures itself for it
    port: int  # where the proxy forwards to
    options: dict[str, str]  # what a system needs to know, e.g. {"queue_type": "quorum"}

    def url(self, port: int) -> str: ...
    def start(self) -> None: ...
    def restart(self) -> None: ...
    def stop(self) -> None: ...


def redis_name(persistence: str) -> str:
    return f"redis ({'aof everysec' if persistence == 'aof' else 'persistence off'})"


def rabbitmq_name(queue_type: str, delay_queue_type: str | None = None) -> str:
    delays = f", {delay_queue_type} delay queues" if delay_queue_type else ""
    return f"rabbitmq ({queue_type} queues{delays})"


class RedisBroker:
    """The broker's own redis-server; ``persistence`` is "aof" (everysec) or "off"."""

    kind = "redis"

    def __init__(self, directory: Path, persistence: str) -> None:
        self.server = RedisServer(directory, persistence)
        self.port = self.server.port
        self.name = redis_name(persistence)
        self.persistence = persistence
        self.options: dict[str, str] = {}

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()


class RabbitBroker:
    """The broker's own RabbitMQ node; ``queue_type`` is "classic" or "quorum", and
    ``delay_queue_type`` that of the delay queues (None: the engine's default, quorum on
    the node's RabbitMQ 3.10). Its data
    directory outlives a crash: durable queues and persistent messages come back."""

    kind = "rabbitmq"

    def __init__(self, directory: Path, queue_type: str, delay_queue_type: str | None) -> None:
        self.node = RabbitNode(directory, label="chaos")
        self.port = self.node.port
        self.name = rabbitmq_name(queue_type, delay_queue_type)
        self.options = {"queue_type": queue_type}
        if delay_queue_type:
            self.options["delay_queue_type"] = delay_queue_type

    def url(self, port: int) -> str:
        return f"amqp://guest:guest@127.0.0.1:{port}//"

    def start(self) -> None:
        self.node.start()

    def restart(self) -> None:
        """SIGKILL the node and start it again on the same ports and data."""
        self.node.restart()

    def stop(self) -> None:
        self.node.stop()


class RedisClusterBroker:
    """The broker's own Redis Cluster (persistence off). Its fault is a failover: SIGKILL
    the master holding the chaos queue's slot, wait for its replica's promotion, start the
    old master again (it comes back as a replica).

    Workers and sender reach the nodes directly, whatever ``port`` is given: a cluster
    client is redirected to each node's own address, so a proxy in front of one node would
    not be in the way of the others (the proxy scenarios are not run on a cluster)."""

    kind = "redis"
    name = "redis cluster (3 masters + 3 replicas)"

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.cluster = LocalCluster(directory)
        self.options: dict[str, str] = {}

    @property
    def port(self) -> int:
        return self.cluster.nodes[0].port

    def url(self, port: int) -> str:
        return self.cluster.url

    def start(self) -> None:
        self.cluster = start_cluster(self.directory)

    def restart(self) -> None:
        # Every key of a queue shares the slot of its hash tag, whatever the prefix.
        self.cluster.fail_over(f"{{{CHAOS_QUEUE}}}")

    def stop(self) -> None:
        self.cluster.stop()


class RabbitClusterBroker:
    """The broker's own three-node RabbitMQ cluster, quorum queues. Its fault: SIGKILL the
    node that leads the chaos queue, then start it again (it rejoins on its data). The queue
    is declared first through the first node, which the workers connect to first too
    (round-robin), so the leader's node is also the one the workers are on.

    Workers and sender reach the nodes directly (the URL lists all three), whatever
    ``port`` is given (the proxy scenarios are not run on a cluster). The nodes send a
    refused dead letter again after 5 s rather than RabbitMQ's 180 (``dead_letter_retry``),
    as docs/brokers/rabbitmq.md advises for a cluster: a countdown held in a delay queue by
    the node loss then runs within seconds of the node's return."""

    kind = "rabbitmq"
    name = "rabbitmq cluster (3 nodes, quorum queues)"

    def __init__(self, directory: Path) -> None:
        self.cluster = LocalRabbitCluster(directory, advanced=dead_letter_retry(5))
        self.options = {"queue_type": "quorum"}

    @property
    def port(self) -> int:
        return self.cluster.nodes[0].port

    def url(self, port: int) -> str:
        return self.cluster.url

    def start(self) -> None:
        self.cluster.start()

    def restart(self) -> None:
        leader = self.cluster.queues().get(CHAOS_QUEUE, {}).get("leader")
        victim = next((n for n in self.cluster.nodes if n.node == leader), self.cluster.nodes[0])
        self.cluster.kill(victim)
        self.cluster.revive()

    def stop(self) -> None:
        self.cluster.stop()
