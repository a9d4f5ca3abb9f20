"""Stamps across real worker processes, on Redis and on RabbitMQ (results in Redis): every
task of a stamped chain reads its stamps in ``self.request.stamps``, and
``revoke_by_stamped_headers`` keeps a queued stamped task from running (its result reads
REVOKED), whether the worker hears it live or reads it when it starts, and stops a
running one with ``terminate=True``.

Tasks report through Redis lists and wait on a Redis "gate", so the tests wait on BLPOP,
never on sleeps.
"""

from __future__ import annotations

import json
import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac import chain, states
from celeriac.exceptions import TaskRevokedError
from tests.conftest import REDIS_URL
from tests.integration.workers import ROOT, WorkerProcess, imported_project

PROJECT = textwrap.dedent(
    """
    import json, os

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": PREFIX}
    app = Celery(
        "stampproj", broker=BROKER, backend=URL, broker_transport_options=options,
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)


    @app.task(bind=True)
    def report(self, tag):
        seen = [tag, sorted(self.request.stamped_headers), self.request.stamps]
        marks.rpush(f"{PREFIX}:seen", json.dumps(seen))
        return tag


    @app.task(bind=True)
    def gated(self, tag):
        marks.rpush(f"{PREFIX}:started", tag)
        marks.blpop([f"{PREFIX}:gate"], timeout=30)  # held until the test opens it
        return tag
    """
)


@pytest.fixture(scope="module", params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModuleType]]:
    with imported_project(request, tmp_path_factory, "stampproj", PROJECT) as found:
        yield found


@pytest.fixture
def marks(project: tuple[Path, ModuleType]) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


def start(path: Path, pool: str = "threads") -> WorkerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    return WorkerProcess.started(path, env, "-P", pool, "-c", "1", app="stampproj")


def next_mark(marks: redis.Redis, name: str, timeout: float = 20) -> bytes:
    item = marks.blpop([name], timeout=timeout)
    assert item is not None, f"nothing on {name} within {timeout}s"
    return bytes(item[1])


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_each_task_of_a_stamped_chain_reads_its_stamps(
    project: tuple[Path, ModuleType], marks: redis.Redis, pool: str
) -> None:
    path, proj = project
    steps = chain(proj.report.si("a"), proj.report.si("b"), proj.report.si("c"))
    steps.tasks[1].link(proj.report.si("linked"))
    steps.stamp(run="r1", batch=[1, 2])
    steps.tasks[2].stamp(last=True)
    worker = start(path, pool)
    try:
        assert steps.apply_async().get(timeout=20) == "c"
        seen = {}
        for _ in range(4):
            tag, names, stamps = json.loads(next_mark(marks, f"{proj.PREFIX}:seen"))
            seen[tag] = (names, stamps)
    finally:
        assert worker.stop() == 0, worker.text
    common = {"run": "r1", "batch": [1, 2]}
    assert seen["a"] == (["batch", "run"], common)
    assert seen["b"] == (["batch", "run"], common)
    assert seen["linked"] == (["batch", "run"], common)  # a link gets the canvas's stamps
    assert seen["c"] == (["batch", "last", "run"], {**common, "last": True})


def test_a_queued_stamped_task_revoked_while_the_worker_runs_is_not_run(
    project: tuple[Path, ModuleType], marks: redis.Redis
) -> None:
    path, proj = project
    worker = start(path)
    try:
        # Given the worker's one slot is busy, so the stamped task waits in the queue
        busy = proj.gated.delay("busy")
        assert next_mark(marks, f"{proj.PREFIX}:started") == b"busy"
        doomed = proj.report.si("doomed")
        doomed.stamp(tenant="acme")
        doomed_result = doomed.delay()
        kept = proj.report.si("kept")
        kept.stamp(tenant="other")
        kept_result = kept.delay()
        # When its stamp is revoked (the worker hears it live), then the slot frees up
        proj.app.control.revoke_by_stamped_headers({"tenant": "acme"})
        marks.rpush(f"{proj.PREFIX}:gate", "open")
        # Then the other tasks run, and the stamped one is recorded REVOKED, not run
        assert busy.get(timeout=20) == "busy"
        assert kept_result.get(timeout=20) == "kept"
        with pytest.raises(TaskRevokedError):
            doomed_result.get(timeout=20)
        assert doomed_result.state == states.REVOKED
        assert marks.lrange(f"{proj.PREFIX}:seen", 0, -1) == [
            json.dumps(["kept", ["tenant"], {"tenant": "other"}]).encode()
        ]
    finally:
        assert worker.stop() == 0, worker.text
        marks.delete(f"{proj.PREFIX}:seen")


def test_a_worker_started_after_the_revoke_skips_the_stamped_task(
    project: tuple[Path, ModuleType], marks: redis.Redis
) -> None:
    path, proj = project
    doomed = proj.report.si("early")
    doomed.stamp(run=["r7", "r8"])
    doomed_result = doomed.delay()
    proj.app.AsyncResult(doomed_result.id).revoke_by_stamped_headers({"run": "r8"})
    worker = start(path)
    try:
        assert proj.report.delay("after").get(timeout=20) == "after"
        with pytest.raises(TaskRevokedError):
            doomed_result.get(timeout=20)
        assert doomed_result.state == states.REVOKED
    finally:
        assert worker.stop() == 0, worker.text
        marks.delete(f"{proj.PREFIX}:seen")


def test_terminate_stops_a_running_stamped_task(
    project: tuple[Path, ModuleType], marks: redis.Redis
) -> None:
    path, proj = project
    worker = start(path, pool="prefork")
    try:
        running = proj.gated.si("held")
        running.stamp(job="j-1")
        result = running.delay()
        assert next_mark(marks, f"{proj.PREFIX}:started") == b"held"
        proj.app.control.revoke_by_stamped_headers({"job": "j-1"}, terminate=True)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=20)
        assert result.state == states.REVOKED
    finally:
        marks.delete(f"{proj.PREFIX}:gate")
        assert worker.stop() == 0, worker.text
