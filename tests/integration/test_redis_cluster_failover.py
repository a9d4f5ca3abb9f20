"""A Redis Cluster master killed with SIGKILL under load: its replica takes over after
``cluster-node-timeout`` (1000 ms here; no ``CLUSTER FAILOVER``), the worker and the
producer reconnect by themselves, and the tasks run.

Redis replicates asynchronously: a write the old master acknowledged but had not yet sent
to its replica is gone after the takeover. The test measures that window instead of
hiding it: every publish acknowledged before the last second ahead of the kill must run,
and it reports how many of the rest were lost. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from celeriac._redis_pubsub import PubSubSubscription
from celeriac.brokers.base import Topic
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import BrokerConnectionError
from celeriac.results.redis import RedisBackend
from tests.conftest import REDIS_URL, service_missing
from tests.integration.redis_cluster import (  # noqa: F401 (fresh_redis_cluster: a fixture)
    LocalCluster,
    cluster_project,
    command,
    fresh_redis_cluster,
    queues_on_every_master,
)
from tests.integration.workers import WorkerProcess

pytestmark = pytest.mark.long
REPLICATION_WINDOW = 1.0  # seconds before the kill in which an acknowledged write may be lost


@dataclass
class Producer:
    """Publishes ``record(n)`` round-robin over ``queues`` from a thread, retrying a failed
    publish of the same task until it returns; notes when each one returned."""

    proj: ModuleType
    queues: list[str]
    pause: float = 0.004
    acked: dict[int, float] = field(default_factory=dict)  # n -> when its publish returned
    failures: list[float] = field(default_factory=list)  # when a publish raised
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            queue = self.queues[n % len(self.queues)]
            try:
                self.proj.record.apply_async((n,), queue=queue, task_id=f"r{n}", retry=False)
            except Exception:  # the outage: try this one again
                self.failures.append(time.monotonic())
                time.sleep(0.05)
                continue
            self.acked[n] = time.monotonic()
            n += 1
            time.sleep(self.pause)

    def queue_of(self, n: int) -> str:
        return self.queues[n % len(self.queues)]


@pytest.fixture
def marks() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    yield client
    client.close()


def test_a_killed_master_is_replaced_and_acknowledged_publishes_run(
    tmp_path: Path,
    fresh_redis_cluster: LocalCluster,  # noqa: F811
    marks: redis.Redis,
) -> None:
    cluster = fresh_redis_cluster
    env, proj = cluster_project(tmp_path, cluster, CELERIAC_TEST_MARKS=REDIS_URL, LEASE="5")
    ran_key = f"{proj.PREFIX}:ran"
    queues = queues_on_every_master(cluster, proj.PREFIX)
    victim = cluster.owner(f"{proj.PREFIX}:{{{queues[0]}}}:s0")
    replica = cluster.replica_of(victim)
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-c", "4", "-Q", ",".join(queues), app="clusterproj"
    )
    producer = Producer(proj, queues)
    thread = threading.Thread(target=producer.run, daemon=True)
    try:
        thread.start()
        time.sleep(3)  # load before the kill: the publishes and runs being measured
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.kill()
        promoted_at = cluster.wait_promoted(replica)
        time.sleep(3)  # load after the takeover
        producer.stop.set()
        thread.join(30)
        sent = dict(producer.acked)

        deadline = time.monotonic() + 60  # lost acks come back after the 5 s lease
        while time.monotonic() < deadline and marks.hlen(ran_key) < len(sent):
            time.sleep(0.2)  # tasks run in another process; their marks are polled
        ran_at = {int(k): float(v) for k, v in marks.hgetall(ran_key).items()}
        ran = set(ran_at)
        dead = [letter for q in queues for letter in proj.app.broker.dead_letters(q)]
        # Results stored after the takeover are read back from the cluster's result store.
        sample = [n for n in sent if n % 3 == 0 and sent[n] > promoted_at][-20:]
        results = [proj.app.AsyncResult(f"r{n}").get(timeout=30) for n in sample]
        twice = sum(1 for runs in marks.hvals(f"{proj.PREFIX}:runs") if int(runs) > 1)
    finally:
        producer.stop.set()
        worker.stop()
        proj.app.close()
        marks.delete(ran_key, f"{proj.PREFIX}:runs")

    lost = sorted(set(sent) - ran)
    before = [n for n in sent if sent[n] < killed_at]
    after = [n for n in sent if sent[n] > promoted_at]
    on_victim = [n for n in before if producer.queue_of(n) == queues[0]]
    # A publish to the killed master waits inside redis-py's cluster client (it retries
    # and reads the layout again) until the replica answers: the producer's stall.
    times = sorted(sent.values())
    stall = max(b - a for a, b in itertools.pairwise(times))
    first_run = min(
        (ran_at[n] for n in after if producer.queue_of(n) == queues[0] and n in ran_at),
        default=float("nan"),
    )
    print(
        f"\nfailover: replica promoted {promoted_at - killed_at:.2f} s after SIGKILL "
        f"(cluster-node-timeout {cluster.node_timeout_ms} ms); longest wait for one publish "
        f"{stall:.2f} s ({len(producer.failures)} raised); first task of the killed "
        f"master's queue run {first_run - killed_wall:.2f} s after the kill; publishes "
        f"acknowledged: {len(before)} before the kill ({len(on_victim)} to the killed "
        f"master's queue), {len(after)} after the takeover; lost: {len(lost)} "
        f"{[(n, round(killed_at - sent[n], 4)) for n in lost][:10]} (n, seconds acknowledged "
        f"before the kill); ran twice: {twice} (at least once: a lost ack, redelivered)"
    )
    assert len(before) > 100 and after, "too little load to measure"
    assert promoted_at - killed_at < 15
    # The asynchronous replication window: only writes acknowledged just before the kill
    # may be gone; every other acknowledged publish ran.
    assert all(killed_at - sent[n] < REPLICATION_WINDOW for n in lost), lost
    assert set(after) <= ran, "a publish acknowledged after the takeover did not run"
    assert not dead, f"messages were dead-lettered in the failover: {dead}"
    assert results == sample
    assert "Traceback" not in worker.text, worker.text


def test_what_waiting_for_a_replica_costs_a_publish(
    fresh_redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    """``WAIT 1`` after a write returns once a replica has it: the publish that waits for
    it closes the window above, at this cost (printed with ``-s``)."""
    master = fresh_redis_cluster.owner("{bench}:s0")
    client = master.client()
    key = "{bench}:s0"
    plain, waited = [], []
    try:
        for n in range(2000):
            started = time.perf_counter()
            client.xadd(key, {"p": b"x" * 500}, maxlen=1000)
            plain.append(time.perf_counter() - started)
            started = time.perf_counter()
            client.xadd(key, {"p": b"x" * 500}, maxlen=1000)
            replicas = command(client, "WAIT", 1, 1000)
            waited.append(time.perf_counter() - started)
            assert int(replicas) == 1, f"WAIT saw {replicas} replicas at write {n}"
    finally:
        client.close()

    def ms(samples: list[float], q: int) -> float:
        return statistics.quantiles(samples, n=100)[q - 1] * 1000

    print(
        f"\nXADD alone: median {ms(plain, 50):.3f} ms, p99 {ms(plain, 99):.3f} ms; "
        f"XADD then WAIT 1: median {ms(waited, 50):.3f} ms, p99 {ms(waited, 99):.3f} ms "
        f"(2000 writes each, one connection, local replica)"
    )
    assert statistics.median(waited) >= statistics.median(plain)


def test_subscriptions_move_to_a_live_node_when_theirs_dies(
    fresh_redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    """A result waiter and a broadcast subscription each hold a connection to one node
    (any node hears every PUBLISH); when that node is killed they subscribe again on a
    live one, and what is published afterwards reaches them."""
    cluster = fresh_redis_cluster
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    backend = RedisBackend(cluster.url, key_prefix=prefix)
    broker = RedisBroker(cluster.url, transport_options={"key_prefix": prefix})
    box: dict[str, Any] = {}
    waiter = threading.Thread(
        target=lambda: box.update(meta=backend.wait_for("t1", timeout=60)), daemon=True
    )
    waiter.start()
    deadline = time.monotonic() + 10
    while backend._listener._session is None:  # the waiter's subscription is being opened
        assert time.monotonic() < deadline, "the result waiter never subscribed"
        time.sleep(0.01)
    port = int(backend._listener._session.connection.port)
    doomed = next(node for node in cluster.nodes if node.port == port)
    topic = Topic(f"t{uuid.uuid4().hex[:8]}", "broadcast")

    async def follow() -> bytes | None:
        try:
            # Subscribe until one subscription sits on the doomed node (each picks a node
            # at random); close the others.
            for _ in range(100):
                subscription = await broker.subscribe(topic)
                assert isinstance(subscription, PubSubSubscription)
                pubsub = subscription._pubsub
                if (
                    pubsub is not None
                    and pubsub.connection is not None
                    and (int(pubsub.connection.port) == port)
                ):
                    break
                await subscription.close()
            else:
                raise AssertionError("no subscription landed on the doomed node")
            doomed.kill()
            with pytest.raises(BrokerConnectionError):
                await subscription.get(30)  # the loss, said once
            assert await subscription.wait_live(30), "never subscribed again"
            await asyncio.to_thread(cluster.wait_until_ok)
            await broker.publish_topic_async(topic, b"after")
            payload = await subscription.get(10)
            await subscription.close()
            return payload
        finally:
            await broker.close_async()

    try:
        assert asyncio.run(follow()) == b"after"
        backend.mark_as_done("t1", "stored after the loss")
        waiter.join(30)
        assert box["meta"]["result"] == "stored after the loss"
    finally:
        backend.close()
        broker.close()
