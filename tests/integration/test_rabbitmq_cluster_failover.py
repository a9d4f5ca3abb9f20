"""The long form of test_rabbitmq_cluster.py: rounds of node kills under load on a real
three-node RabbitMQ cluster that this module starts. Each round kills (SIGKILL) one node
-- the worker's, or the node leading the queue while the worker stays on its own -- keeps
the load on, then starts the node again and waits for it to rejoin. The producer publishes
with pipelined confirms (the default): nothing it sent may fail or be lost. Run with
``--long -s`` to see each round's figures.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from tests.integration.rabbitmq_cluster import (  # noqa: F401 (rabbit_cluster: a fixture)
    LocalRabbitCluster,
    Producer,
    cluster_project,
    rabbit_cluster,
    rabbit_project,
    recovery,
    worker_node,
)
from tests.integration.workers import WorkerProcess

pytestmark = [pytest.mark.long, pytest.mark.timeout(900)]
ROUNDS = 4  # the worker's node, the queue's leader, the worker's node, the queue's leader


@pytest.fixture
def project(
    tmp_path: Path,
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    redis_url: str,
) -> Iterator[tuple[dict[str, str], ModuleType, redis.Redis]]:
    with cluster_project(tmp_path, rabbit_cluster, redis_url, LEASE="10") as made:
        yield made


def test_rounds_of_node_kills_under_load_lose_nothing(
    tmp_path: Path,
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    project: tuple[dict[str, str], ModuleType, redis.Redis],
) -> None:
    env, proj, marks = project
    queue = f"{proj.PREFIX}-load"
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-c", "8", "-Q", queue, app="rabbitproj"
    )
    producer = Producer(proj, [queue], pause=0.002)
    thread = threading.Thread(target=producer.run, daemon=True)
    rounds: list[str] = []
    try:
        thread.start()
        for n in range(ROUNDS):
            producer.wait_for(marks, ran=producer.ran(marks) + 300)  # load before the kill
            on = worker_node(worker.text, last=True)
            leader = rabbit_cluster.queues()[queue]["leader"]
            if n % 2 == 0 or leader == rabbit_cluster.by_port(on).node:
                victim = rabbit_cluster.by_port(on)  # the worker's node
            else:  # the queue's leader, while the worker stays where it is
                victim = next(node for node in rabbit_cluster.nodes if node.node == leader)
            moves = worker.text.count("having been lost")
            killed_at, killed_wall = time.monotonic(), time.time()
            rabbit_cluster.kill(victim)
            if victim.port == on:
                deadline = time.monotonic() + 60
                while worker.text.count("having been lost") == moves:
                    assert time.monotonic() < deadline, worker.text
                    time.sleep(0.02)  # the worker's log is read by another thread
            moved = time.monotonic() - killed_at
            producer.wait_for(marks, ran=producer.ran(marks) + 300)  # load after the kill
            figures = recovery(
                proj, marks, producer, killed_at, killed_wall, timeout=0, since=killed_at - 5
            )
            what = [
                "the worker's node" if victim.port == on else "another node",
                "the queue's leader" if victim.node == leader else "a follower of the queue",
            ]
            rounds.append(
                f"round {n + 1}, killed {' and '.join(what)}: the worker "
                f"{f'moved in {moved:.2f} s' if victim.port == on else 'stayed'}; "
                f"{figures.timing}"
            )
            started = time.monotonic()
            rabbit_cluster.revive()
            rounds[-1] += f"; the node rejoined {time.monotonic() - started:.1f} s later"
            print(rounds[-1], flush=True)
        producer.stop.set()
        thread.join(60)
        proj.app.broker.flush()  # every pipelined publish confirmed (or raised)
        figures = recovery(proj, marks, producer, 0.0, time.time(), timeout=120)
        assert worker.stop() == 0
    finally:
        producer.stop.set()
        worker.stop()
    print(
        f"in all: {len(producer.acked)} tasks called; lost {len(figures.lost)}; ran twice "
        f"{figures.twice}"
    )
    assert producer.failures == [], producer.failures[:5]
    assert figures.lost == [], f"published, never ran: {figures.lost[:20]}"
    assert "Traceback" not in worker.text, worker.text
