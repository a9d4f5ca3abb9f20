"""Fixtures for a real three-node RabbitMQ cluster (``rabbitmq_cluster_nodes``), a project
whose broker is the cluster, and the producer and figures of the failover tests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from tests.integration.rabbitmq_cluster_nodes import (  # noqa: F401 (for the cluster tests)
    SIZE,
    LocalRabbitCluster,
    start_rabbit_cluster,
)
from tests.integration.rabbitmq_node import RabbitNode
from tests.integration.workers import ROOT


@pytest.fixture(scope="module")
def rabbit_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    """One cluster for the tests of a module (starting one takes about 15 s)."""
    cluster = start_rabbit_cluster(tmp_path_factory.mktemp("rabbit-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


def declare_on(node: RabbitNode, queues: list[str], namespace: str) -> None:
    """Declare ``queues`` as quorum queues through ``node`` alone: RabbitMQ places a quorum
    queue's leader on the node it is declared through (``client-local``). A publish
    declares its queue (and not the 32 delay queues ``declare_queue`` adds)."""
    broker = AmqpBroker(
        node.url, transport_options={"queue_type": "quorum", "namespace": namespace}
    )
    try:
        for queue in queues:
            broker.publish(OutboundMessage(queue=queue, payload=b"", message_id="declare"))
            broker.purge(queue)
    finally:
        broker.close()


# -- a project whose broker is the cluster --------------------------------------------------

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    OPTIONS = {"namespace": PREFIX, "visibility_timeout": float(os.environ.get("LEASE", "30"))}
    if os.environ.get("CONFIRM"):  # each publish returns once confirmed
        OPTIONS["confirm_publish"] = True
    app = Celery(
        "rabbitproj", broker=os.environ["CELERIAC_TEST_CLUSTER"].split(";"),  # a list
        backend=os.environ["CELERIAC_TEST_REDIS"],
        broker_transport_options=OPTIONS,
        result_backend_transport_options={"key_prefix": PREFIX},
        worker_prefetch_multiplier=int(os.environ.get("PREFETCH", "4")),
    )
    # Outside the cluster: which tasks ran, how often, and when.
    marks = redis.Redis.from_url(os.environ["CELERIAC_TEST_REDIS"])


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def record(n):
        marks.hincrby(f"{PREFIX}:runs", str(n), 1)
        marks.hsetnx(f"{PREFIX}:ran", str(n), repr(time.time()))
        marks.rpush(f"{PREFIX}:run-log", n)  # for a test to wait on each run (BLPOP)
        return n
    """
)


def rabbit_project(
    directory: Path, cluster: LocalRabbitCluster, redis_url: str, **extra: str
) -> tuple[dict[str, str], ModuleType]:
    """The project written to ``directory`` and imported here; the worker's environment."""
    import importlib

    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    (directory / "rabbitproj.py").write_text(PROJECT)
    settings = {
        "CELERIAC_TEST_CLUSTER": cluster.url,
        "CELERIAC_TEST_PREFIX": prefix,
        "CELERIAC_TEST_REDIS": redis_url,
        **extra,
    }
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(directory)]),
        "PYTHONUNBUFFERED": "1",
        **settings,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in settings.items():
            patch.setenv(key, value)
        patch.syspath_prepend(str(directory))
        module = importlib.import_module("rabbitproj")
        sys.modules.pop("rabbitproj", None)
    return env, module


@contextlib.contextmanager
def cluster_project(
    directory: Path, cluster: LocalRabbitCluster, redis_url: str, **extra: str
) -> Iterator[tuple[dict[str, str], ModuleType, redis.Redis]]:
    """``rabbit_project``, with a client of the Redis its tasks mark, closed and cleaned
    up afterwards."""
    env, module = rabbit_project(directory, cluster, redis_url, **extra)
    marks = redis.Redis.from_url(redis_url)
    try:
        yield env, module, marks
    finally:
        module.app.close()
        for key in marks.scan_iter(match=f"{module.PREFIX}*", count=1000):
            marks.delete(key)
        marks.close()


_ON_NODE = re.compile(r"connected to RabbitMQ node amqp://[^@\s]*@[^:\s]+:(\d+)/")


def worker_node(log: str, last: bool = False) -> int:
    """The AMQP port of the node a worker's log says it connected to (first, or last)."""
    found = _ON_NODE.findall(log)
    assert found, f"the log never says which node it is on:\n{log}"
    return int(found[-1] if last else found[0])


@dataclass
class Producer:
    """Calls ``record(n)`` round-robin over ``queues`` from a thread and notes when each
    call returned (with ``confirm_publish``: once RabbitMQ confirmed it). A call that
    raises is noted and made again: the publish retry policy should have covered it."""

    proj: ModuleType
    queues: list[str]
    pause: float = 0.004
    acked: dict[int, float] = field(default_factory=dict)  # n -> when its call returned
    failures: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            queue = self.queues[n % len(self.queues)]
            try:
                self.proj.record.apply_async((n,), queue=queue, task_id=f"r{n}")
            except Exception as exc:  # noted; the test fails on any
                self.failures.append((time.monotonic(), repr(exc)))
                time.sleep(0.05)
                continue
            self.acked[n] = time.monotonic()
            n += 1
            time.sleep(self.pause)

    def ran(self, marks: redis.Redis) -> int:
        return int(marks.hlen(f"{self.proj.PREFIX}:ran"))

    def wait_for(self, marks: redis.Redis, ran: int, timeout: float = 60) -> None:
        """Until ``ran`` tasks have run (marked in Redis by the worker)."""
        deadline = time.monotonic() + timeout
        while self.ran(marks) < ran:
            assert time.monotonic() < deadline, f"{self.ran(marks)} of {ran} tasks ran"
            time.sleep(0.05)  # the worker is another process: its marks are polled


@dataclass
class Recovery:
    """What a node loss did to the calls made around it."""

    lost: list[int]  # confirmed, never ran
    before: int  # calls confirmed before the kill
    after: int  # after it
    stall: float  # the longest wait between two confirmed calls
    first_run: float  # seconds from the kill until a call made after it ran
    twice: int  # tasks that ran more than once (at least once: a lost ack)

    @property
    def timing(self) -> str:
        return (
            f"the first task called after the kill ran {self.first_run:.2f} s after it; the "
            f"longest wait for one publish {self.stall:.2f} s"
        )

    def __str__(self) -> str:
        return (
            f"{self.timing}; confirmed: {self.before} before the kill, {self.after} after; "
            f"lost: {len(self.lost)}; ran twice: {self.twice}"
        )


def recovery(
    proj: ModuleType,
    marks: redis.Redis,
    producer: Producer,
    killed_at: float,
    killed_wall: float,
    timeout: float = 60,
    since: float = 0.0,
) -> Recovery:
    """Once every confirmed call has run (or ``timeout`` passed): the figures, the
    longest wait counted among the calls made after ``since``."""
    sent = dict(producer.acked)
    deadline = time.monotonic() + timeout
    while producer.ran(marks) < len(sent) and time.monotonic() < deadline:
        time.sleep(0.1)  # the worker is another process: its marks are polled
    ran = {int(k): float(v) for k, v in marks.hgetall(f"{proj.PREFIX}:ran").items()}
    after = [n for n in sent if sent[n] > killed_at]
    times = sorted(t for t in sent.values() if t > since)
    return Recovery(
        lost=sorted(set(sent) - set(ran)),
        before=sum(1 for n in sent if sent[n] <= killed_at),
        after=len(after),
        stall=max((b - a for a, b in itertools.pairwise(times)), default=0.0),
        first_run=min((ran[n] for n in after if n in ran), default=float("nan")) - killed_wall,
        twice=sum(1 for runs in marks.hvals(f"{proj.PREFIX}:runs") if int(runs) > 1),
    )
