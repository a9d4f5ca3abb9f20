"""Real worker processes on RabbitMQ: started from the CLI on an ``amqp://`` broker (a vhost
of the test session's own), tasks sent from this process, results and marks in Redis."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.exceptions import TaskRevokedError
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    REDIS = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "proj", broker=os.environ["CELERIAC_TEST_AMQP"], backend=REDIS,
        broker_transport_options={
            "namespace": os.environ["CELERIAC_TEST_NAMESPACE"],
            "consumer_timeout": float(os.environ.get("CONSUMER_TIMEOUT", "1800")),
        },
        result_backend_transport_options={"key_prefix": PREFIX},
        task_delivery_limit=int(os.environ.get("DELIVERY_LIMIT", "5")),
    )
    marks = redis.Redis.from_url(REDIS)


    def mark(name, value):
        marks.rpush(f"{PREFIX}:marks:{name}", value)  # the record, for counting
        marks.rpush(f"{PREFIX}:events:{name}", value)  # consumed by tests that wait


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def stamp(tag):
        mark("ran", f"{tag}|{time.time()!r}")
        return tag


    @app.task
    def poison():
        mark("poison", str(os.getpid()))
        os._exit(1)  # kills whatever process runs it, every time


    @app.task(time_limit=3600)
    def long_job():
        return "done"
    """
)

Project = tuple[Path, dict[str, str], ModuleType]


@pytest.fixture
def make_project(
    tmp_path: Path,
    amqp_url: str,
    amqp_namespace: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., Project]]:
    """Writes the project, imports it here (the sending side), returns its worker env."""
    apps: list[ModuleType] = []

    def make(**extra: str) -> Project:
        (tmp_path / "proj.py").write_text(PROJECT)
        settings = {
            "CELERIAC_TEST_AMQP": amqp_url,
            "CELERIAC_TEST_NAMESPACE": amqp_namespace,
            "CELERIAC_TEST_REDIS": redis_url,
            "CELERIAC_TEST_PREFIX": redis_prefix,
            **extra,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
            "PYTHONUNBUFFERED": "1",
        }
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("proj", None)
        proj = importlib.import_module("proj")
        apps.append(proj)
        return tmp_path, env, proj

    yield make
    for proj in apps:
        proj.app.close()
    sys.modules.pop("proj", None)


def wait_marks(proj: ModuleType, name: str, count: int, timeout: float = 20) -> list[str]:
    """Block until ``count`` tasks have made mark ``name`` (BLPOP: no polling)."""
    got: list[str] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        left = deadline - time.monotonic()
        assert left > 0, f"only {len(got)} of {count} {name} marks"
        # Short waits: redis-py 8 reads with a 5 s socket timeout, which a long BLPOP trips.
        popped = proj.marks.blpop(f"{proj.PREFIX}:events:{name}", max(1, min(2, int(left))))
        if popped:
            got.append(popped[1].decode())
    return got


def marks(proj: ModuleType, name: str) -> list[str]:
    return [v.decode() for v in proj.marks.lrange(f"{proj.PREFIX}:marks:{name}", 0, -1)]


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_worker_runs_tasks_sent_from_another_process(
    make_project: Callable[..., Project], pool: str
) -> None:
    path, env, proj = make_project(CONSUMER_TIMEOUT="60")
    worker = WorkerProcess(path, env, "-P", pool, "-c", "2", "-n", "w1@%h")
    try:
        worker.wait_ready()
        results = [proj.add.delay(n, n) for n in range(20)]
        assert [r.get(timeout=20) for r in results] == [2 * n for n in range(20)]
        sent = time.time()
        later = proj.stamp.apply_async(("later",), countdown=1)
        assert later.get(timeout=20) == "later"
        [ran] = marks(proj, "ran")
        assert float(ran.split("|")[1]) >= sent + 1 - 0.05, "ran before its countdown"
        # Revoked while it waits broker-side: recorded REVOKED, never run.
        doomed = proj.stamp.apply_async(("doomed",), countdown=1)
        doomed.revoke()
        with pytest.raises(TaskRevokedError):
            doomed.get(timeout=20)
        assert worker.stop() == 0
    finally:
        worker.stop()
    log = worker.text
    assert "received" in log and "succeeded in" in log
    # long_job's 3600 s limit is past the consumer_timeout of 60 s: the worker said so.
    assert "consumer_timeout (60 s" in log
    assert "guest:guest" not in log, "the broker password must not be logged"


def test_a_task_that_kills_its_worker_stops_at_the_delivery_limit(
    make_project: Callable[..., Project],
) -> None:
    """A threads-pool worker dies with the task: RabbitMQ redelivers (redelivered flag), the
    next worker counts the lost delivery, and the limit sends it to the dead letters."""
    path, env, proj = make_project(DELIVERY_LIMIT="2")
    proj.poison.delay()
    for attempt in range(2):  # each worker runs it once and dies with it
        worker = WorkerProcess(path, env, "-P", "threads", "-c", "1")
        try:
            wait_marks(proj, "poison", 1)
            assert worker.wait(timeout=20) != 0, f"worker {attempt} did not die"
        finally:
            worker.stop()
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "1")
    try:
        worker.wait_ready()
        broker: AmqpBroker = proj.app.broker
        deadline = time.monotonic() + 20
        while not (letters := broker.dead_letters("celery")):
            assert time.monotonic() < deadline, "never dead-lettered"
            assert worker.process.poll() is None, worker.text
            time.sleep(0.1)  # the dead-letter queue has no notification to wait on
        [letter] = letters
        assert letter.reason.value == "delivery_limit"
        assert letter.delivery_count == 2
        assert len(marks(proj, "poison")) == 2, "ran past the delivery limit"
        assert broker.purge_dead_letters("celery") == 1
    finally:
        worker.stop()
