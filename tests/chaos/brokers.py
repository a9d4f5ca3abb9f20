"""Brokers under fault, each a server the harness owns on a spare port and can crash and
start again: a redis-server (AOF ``everysec`` or no persistence) and a RabbitMQ node
(classic or quorum queues)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.chaos.servers import RedisServer
from tests.integration.rabbitmq_node import RabbitNode


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
