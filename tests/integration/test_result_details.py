"""What a real worker records beside a result, and how it settles a failed task's message:
``result_extended`` fields, the ``children`` a task sent (walked with ``collect``), and
``acks_on_failure_or_timeout`` off (failures and hard time limits dead-lettered).

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

    from celeriac import Celery, group

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "detproj", broker=URL, backend=URL, broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX}, result_extended=True,
    )


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
    overrun = proj.overruns_unacked.delay()

    # The failures are recorded either way,
    with pytest.raises(ValueError, match="no ack for me"):
        unacked.get(timeout=20)
    with pytest.raises(TimeLimitExceeded):
        overrun.get(timeout=20)
    assert acked.get(timeout=20, propagate=False) is not None and acked.state == states.FAILURE
    # and the two tasks with acks_on_failure_or_timeout off leave their message in the
    # dead letters (reason "failed") instead of acking it.
    worker.wait_for_log(f"[{unacked.id}] failed: its message goes to the dead letters")
    worker.wait_for_log(f"[{overrun.id}] failed: its message goes to the dead letters")
    dead = {letter.message_id: letter for letter in proj.app.broker.dead_letters("celery")}
    assert set(dead) >= {unacked.id, overrun.id} and acked.id not in dead
    assert dead[unacked.id].reason is DeadLetterReason.FAILED
    assert "TimeLimitExceeded" in dead[overrun.id].detail
    proj.app.broker.purge_dead_letters("celery")
