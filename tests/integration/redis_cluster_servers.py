"""A real Redis Cluster started and stopped on spare ports: six redis-servers, three
masters with a replica each, persistence off (no Docker). Used by the cluster tests and the
chaos harness alike.

``cluster-node-timeout`` is short (1000 ms by default), so a master killed with SIGKILL is
declared failed, and its replica promoted, within a few seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.conftest import service_missing
from tests.integration.conftest import free_port, system_redis_server, wait_for_redis_server

NODE_TIMEOUT_MS = 1000


def command(client: redis.Redis, *args: Any) -> Any:
    """One raw command (redis-py leaves ``execute_command`` untyped)."""
    return client.execute_command(*args)  # type: ignore[no-untyped-call]


@dataclass
class ClusterNode:
    """One redis-server of the cluster: its client port, bus port and directory."""

    directory: Path
    port: int = 0
    bus_port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.bus_port = self.bus_port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, binary: str, node_timeout_ms: int) -> None:
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--cluster-port", str(self.bus_port),
             "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--cluster-node-timeout", str(node_timeout_ms),
             "--appendonly", "no", "--save", "", "--repl-diskless-sync-delay", "0",
             "--logfile", str(self.directory / "redis.log")],
        )  # fmt: skip
        wait_for_redis_server(self.port, self.kill)

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)


@dataclass
class LocalCluster:
    """Six redis-servers made into a 3-master / 3-replica cluster."""

    directory: Path
    node_timeout_ms: int = NODE_TIMEOUT_MS
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The broker/result URL: every node, so any one of them is enough to start."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes) + "/"

    def start(self) -> None:
        binary, cli = system_redis_server(), shutil.which("redis-cli")
        if binary is None or cli is None:
            raise RuntimeError("redis-server and redis-cli must be on PATH")
        self.nodes = [ClusterNode(self.directory / f"node{i}") for i in range(6)]
        try:
            for node in self.nodes:
                node.start(binary, self.node_timeout_ms)
            subprocess.run(
                [cli, "--cluster", "create", *(n.address for n in self.nodes),
                 "--cluster-replicas", "1", "--cluster-yes"],
                check=True, capture_output=True, timeout=60,
            )  # fmt: skip
            self.wait_until_ok()
        except BaseException:
            self.stop()
            raise

    def wait_until_ok(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on the masters, and
        every live replica's link to its master is up (its copy is in step)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._all_ok():
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the cluster in {self.directory} did not reach state ok")
            time.sleep(0.05)  # polling the servers' own view: there is no event to await

    def _all_ok(self) -> bool:
        views = set()
        for node in self.live():
            client = node.client()
            try:
                info = command(client, "CLUSTER", "INFO")
                text = info.decode() if isinstance(info, bytes) else str(info)
                if "cluster_state:ok" not in text:
                    return False
                views.add(tuple(sorted(self._masters(client))))
                replication = client.info("replication")
                if replication.get("role") == "slave" and (
                    replication.get("master_link_status") != "up"
                ):
                    return False
            except (redis.RedisError, OSError):
                return False
            finally:
                client.close()
        return len(views) == 1

    @staticmethod
    def _masters(client: redis.Redis) -> list[str]:
        """The ports of the masters that own slots, as this node sees them."""
        slots = command(client, "CLUSTER", "SLOTS")
        return sorted({str(int(entry[2][1])) for entry in slots})

    def live(self) -> list[ClusterNode]:
        return [n for n in self.nodes if n.process is not None]

    def masters(self) -> list[ClusterNode]:
        """The live nodes that own slots now."""
        client = self.live()[0].client()
        try:
            ports = {int(p) for p in self._masters(client)}
        finally:
            client.close()
        return [n for n in self.live() if n.port in ports]

    def owner(self, key: str) -> ClusterNode:
        """The node that owns ``key``'s slot now."""
        client = self.live()[0].client()
        try:
            slot = int(command(client, "CLUSTER", "KEYSLOT", key))
            for start, end, master, *_ in command(client, "CLUSTER", "SLOTS"):
                if int(start) <= slot <= int(end):
                    port = int(master[1])
                    return next(n for n in self.nodes if n.port == port)
        finally:
            client.close()
        raise LookupError(f"no node owns the slot of {key!r}")

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        client = master.client()
        try:
            node_id = command(client, "CLUSTER", "MYID")
            node_id = node_id.decode() if isinstance(node_id, bytes) else str(node_id)
            lines = command(client, "CLUSTER", "REPLICAS", node_id)
        finally:
            client.close()
        for line in lines:
            text = line.decode() if isinstance(line, bytes) else str(line)
            port = int(text.split()[1].split("@")[0].rsplit(":", 1)[1])
            return next(n for n in self.nodes if n.port == port)
        raise LookupError(f"{master.address} has no replica")

    def wait_promoted(self, replica: ClusterNode, timeout: float = 30) -> float:
        """Wait until ``replica`` says it is a master and every live node says ``ok``;
        when that was."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            client = replica.client()
            try:
                role = command(client, "ROLE")[0]
            except (redis.RedisError, OSError):
                role = b""
            finally:
                client.close()
            if role in (b"master", "master"):
                self.wait_until_ok(timeout=max(1.0, deadline - time.monotonic()))
                return time.monotonic()
            time.sleep(0.01)  # the cluster's own failure detection: nothing to await
        raise AssertionError(f"{replica.address} was not promoted within {timeout} s")

    def restart(self, node: ClusterNode) -> None:
        """Start a killed node again on its port and ``nodes.conf``: a master whose replica
        took over comes back as that replica's replica. Returns once the cluster is ok."""
        binary = system_redis_server()
        assert binary is not None, "redis-server is not on PATH"
        node.start(binary, self.node_timeout_ms)
        self.wait_until_ok()

    def fail_over(self, key: str) -> tuple[ClusterNode, ClusterNode]:
        """SIGKILL the master holding ``key``'s slot, wait for its replica's promotion, and
        start the old master again (as a replica). The old master and the new one."""
        victim = self.owner(key)
        replica = self.replica_of(victim)
        victim.kill()
        self.wait_promoted(replica)
        self.restart(victim)
        return victim, replica

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()


def start_cluster(directory: Path, node_timeout_ms: int = NODE_TIMEOUT_MS) -> LocalCluster:
    if system_redis_server() is None or shutil.which("redis-cli") is None:
        service_missing("redis-server", "redis-server and redis-cli are needed for a cluster")
    cluster = LocalCluster(directory, node_timeout_ms)
    cluster.start()
    return cluster
