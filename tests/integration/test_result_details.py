"""What a real worker records beside a result, and how it settles a failed task's message:
``result_extended`` fields, the ``children`` a task sent (walked with ``collect``), and
``acks_on_failure_or_timeout`` off (a failure dead-lettered, a hard time limit run again
until the delivery limit).

Real CLI workers (prefork and threads) on Redis, results in Redis.
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac import states
from celeriac.brokers.base import DeadLetterReason
from celeriac.exceptions import TimeLimitExceeded
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery, group

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "detproj", broker=URL, backend=URL, broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX}, result_extended=True,
        task_delivery_limit=2,
    )


    marks = redis.Redis.from_url(URL)


    @app.task
    def add(x, y=0):
        return x + y


    @app.task
    def fan_out(n):
        for i in range(n):
            add.delay(i, y=i)
        group(add.s(10), add.s(20)).delay()
        return "sent"


    @app.task(acks_on_failure_or_timeout=False)
    def fails_unacked():
        raise ValueError("no ack for me")


    @app.task(acks_on_failure_or_timeout=False, time_limit=1)
    def overruns_unacked():
        marks.rpush(f"{PREFIX}:overruns", os.getpid())
        for _ in range(200):  # short sleeps: a thread's limit lands promptly
            time.sleep(0.05)


    @app.task
    def fails_acked():
        raise ValueError("acked as usual")
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ModuleType]]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    path = tmp_path_factory.mktemp("detproj")
    (path / "detproj.py").write_text(PROJECT)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.syspath_prepend(str(path))
        proj = importlib.import_module("detproj")
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop("detproj", None)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(params=["prefork", "threads"])
def worker(
    request: pytest.FixtureRequest, project: tuple[Path, ModuleType]
) -> Iterator[WorkerProcess]:
    path, _ = project
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    process = WorkerProcess.started(
        path, env, "-P", request.param, "-c", "2", "-n", "details@%h", app="detproj"
    )
    try:
        yield process
    finally:
        process.stop()


def test_extended_results_from_a_worker(
    project: tuple[Path, ModuleType], worker: WorkerProcess
) -> None:
    _, proj = project
    sent = proj.add.apply_async((2,), {"y": 3})
    assert sent.get(timeout=20) == 5

    reread = proj.app.AsyncResult(sent.id)  # a fresh handle: all of it from Redis
    assert (reread.name, reread.args, reread.kwargs) == ("detproj.add", [2], {"y": 3})
    assert (reread.queue, reread.retries) == ("celery", 0)
    assert reread.worker is not None and reread.worker.startswith("details@")
    assert isinstance(reread.date_done, dt.datetime)


def test_children_sent_by_a_task_on_a_worker(
    project: tuple[Path, ModuleType], worker: WorkerProcess
) -> None:
    _, proj = project
    sent = proj.fan_out.delay(2)
    assert sent.get(timeout=20) == "sent"

    values = [value for _, value in proj.app.AsyncResult(sent.id).collect(timeout=20)]
    assert values == ["sent", 0, 2, [10, 20], 10, 20]
    [first, _, group_result] = proj.app.AsyncResult(sent.id).children
    assert first.parent is None and first.args == [0]
    assert group_result.ready()


def test_a_failure_without_acks_on_failure_is_dead_lettered(
    project: tuple[Path, ModuleType], worker: WorkerProcess
) -> None:
    _, proj = project
    acked = proj.fails_acked.delay()
    unacked = proj.fails_unacked.delay()

    # The failures are recorded either way,
    with pytest.raises(ValueError, match="no ack for me"):
        unacked.get(timeout=20)
    assert acked.get(timeout=20, propagate=False) is not None and acked.state == states.FAILURE
    # and the task with acks_on_failure off leaves its message in the dead letters
    # (reason "failed") instead of acking it (Celery's reject without requeue).
    worker.wait_for_log(f"[{unacked.id}] failed: its message went to the dead letters")
    dead = {letter.message_id: letter for letter in proj.app.broker.dead_letters("celery")}
    assert unacked.id in dead and acked.id not in dead
    assert dead[unacked.id].reason is DeadLetterReason.FAILED
    proj.app.broker.purge_dead_letters("celery")


def test_a_timeout_without_acks_on_timeout_runs_again(
    project: tuple[Path, ModuleType], worker: WorkerProcess
) -> None:
    _, proj = project
    overrun = proj.overruns_unacked.delay()

    # Stopped at its hard limit, recorded as failed, and requeued (Celery 5.7 requeues a
    # timed-out task whose acks_on_timeout is off): it runs again, up to the delivery
    # limit (2 here), and then its message goes to the dead letters.
    with pytest.raises(TimeLimitExceeded):
        overrun.get(timeout=20)
    worker.wait_for_log(f"[{overrun.id}] timed out: its message went to the dead letters")
    assert len(worker.text.split(f"[{overrun.id}] timed out:")) == 3  # two runs
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert client.llen(f"{proj.PREFIX}:overruns") == 2
        client.delete(f"{proj.PREFIX}:overruns")
    finally:
        client.close()
    [dead] = [d for d in proj.app.broker.dead_letters("celery") if d.message_id == overrun.id]
    assert dead.reason is DeadLetterReason.DELIVERY_LIMIT and "timed out" in dead.detail
    proj.app.broker.purge_dead_letters("celery")
