"""A real RabbitMQ cluster started and stopped on spare ports: three nodes of its own
(``RabbitNode``: own node names, AMQP and distribution ports, data directories) sharing one
Erlang cookie, joined with ``rabbitmqctl stop_app / join_cluster / start_app``. Never the
shared node on 5672; no Docker. Used by the cluster tests and the chaos harness alike.

A node killed with SIGKILL is noticed by the others at once (its distribution connection
closes), and a node started again on its data rejoins the cluster by itself.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.conftest import free_ports
from tests.integration.rabbitmq_node import RabbitNode

SIZE = 3


def dead_letter_retry(seconds: float) -> str:
    """An ``advanced.config`` that makes RabbitMQ's at-least-once dead-letter workers send
    again, after ``seconds`` instead of 180, a dead letter that was refused or never
    confirmed (``dead_letter_worker_publisher_confirm_timeout``; no ``rabbitmq.conf``
    key). A countdown held by a node loss moves on that much sooner once the node is back
    (docs/brokers/rabbitmq.md, "RabbitMQ cluster")."""
    return (
        f"[{{rabbit, [{{dead_letter_worker_publisher_confirm_timeout, "
        f"{round(seconds * 1000)}}}]}}].\n"
    )


@dataclass
class LocalRabbitCluster:
    """``SIZE`` nodes under ``directory``, the first one the node the others join; each
    with ``advanced`` as its ``advanced.config`` (empty: RabbitMQ's defaults)."""

    directory: Path
    nodes: list[RabbitNode] = field(default_factory=list)
    advanced: str = ""

    @property
    def url(self) -> str:
        """The broker URL: every node, as kombu's failover list."""
        return ";".join(node.url for node in self.nodes)

    def start(self) -> None:
        home = self.directory / "home"  # one Erlang cookie for every node and rabbitmqctl
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(20))
        cookie.chmod(0o400)
        ports = free_ports(2 * SIZE)  # AMQP and distribution ports, all different
        self.nodes = [
            RabbitNode(
                self.directory / f"node{n}", label=f"cluster{n}", home=home,
                port=ports[2 * n], dist_port=ports[2 * n + 1], advanced=self.advanced,
            )
            for n in range(SIZE)
        ]  # fmt: skip
        try:
            for node in self.nodes:
                node.start(ready=False)  # side by side: start-up is most of the cost
            for node in self.nodes:
                node.wait_ready()
            # One at a time: joins in parallel race on the cluster's schema set-up, and one
            # can fail in mnesia (rabbitmq/rabbitmq-server#2631).
            for node in self.nodes[1:]:
                self._join(node)
            self.wait_until_running(self.nodes)
        except BaseException:
            self.stop()
            raise

    def _join(self, node: RabbitNode) -> None:
        node.rabbitmqctl("stop_app")
        node.rabbitmqctl("join_cluster", self.nodes[0].node)
        node.rabbitmqctl("start_app")

    def status(self) -> dict[str, object]:
        """``rabbitmqctl cluster_status`` as a running node sees it."""
        found: dict[str, object] = json.loads(
            self.live()[0].rabbitmqctl("cluster_status", "--formatter", "json")
        )
        return found

    def wait_until_running(self, nodes: list[RabbitNode], timeout: float = 90) -> None:
        """Until the cluster says every one of ``nodes`` runs in it."""
        wanted = {node.node for node in nodes}
        deadline = time.monotonic() + timeout
        while True:
            running = set(self.status().get("running_nodes", []))  # type: ignore[call-overload]
            if wanted <= running:
                return
            assert time.monotonic() < deadline, f"not running in the cluster: {wanted - running}"
            time.sleep(0.5)  # the nodes' own membership: nothing to wait on but asking

    def live(self) -> list[RabbitNode]:
        return [node for node in self.nodes if node.process is not None]

    def by_port(self, port: int) -> RabbitNode:
        return next(node for node in self.nodes if node.port == port)

    def kill(self, node: RabbitNode) -> None:
        """SIGKILL: a crashed machine, nothing closed cleanly."""
        node.crash()

    def revive(self) -> None:
        """Start every node that is down again (on its data: it rejoins the cluster)."""
        down = [node for node in self.nodes if node.process is None]
        for node in down:
            node.start(ready=False)
        for node in down:
            node.wait_ready()
        if down:
            self.wait_until_running(self.nodes)

    def queues(self, vhost: str = "/") -> dict[str, dict[str, str]]:
        """Each queue's ``type`` and, for a quorum queue, ``leader`` (its node's name)."""
        out = self.live()[0].rabbitmqctl(
            "list_queues", "-p", vhost, "--formatter", "json", "name", "type", "leader"
        )
        return {row.pop("name"): row for row in json.loads(out)}

    def stop(self) -> None:
        """SIGKILL every node: the data is the test's own, nothing needs a clean stop."""
        for node in self.nodes:
            node.crash()


def start_rabbit_cluster(directory: Path, advanced: str = "") -> LocalRabbitCluster:
    cluster = LocalRabbitCluster(directory, advanced=advanced)
    cluster.start()
    return cluster
