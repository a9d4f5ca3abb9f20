"""Pool operations on real worker processes, on Redis and RabbitMQ: ``--autoscale`` (a
prefork pool that forks children while tasks wait and lets them go when idle, with
``control autoscale`` and ``inspect stats``), ``pool_restart`` (new prefork children
that run a reloaded module's code), ``worker_direct`` (a queue each worker has alone)."""

from __future__ import annotations

import importlib
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.workers import (
    TEST_ENV,
    WorkerProcess,
    broker_url,
    fresh_queues,
    project_env,
)

NODE = "ops@int"
WAIT = 10.0


@dataclass
class Project:
    app: Any
    path: Path
    env: dict[str, str]
    marks: redis.Redis
    prefix: str

    def worker(self, *args: str, **env: str) -> WorkerProcess:
        return WorkerProcess.started(self.path, {**self.env, **env}, "-n", NODE, *args)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", *args],
            cwd=self.path, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    def wait_mark(self, name: str, timeout: float = 20) -> str:
        popped = self.marks.blpop([f"{self.prefix}:events:{name}"], timeout=timeout)
        assert popped is not None, f"no {name!r} mark within {timeout}s"
        return popped[1].decode()

    def stats(self) -> dict[str, Any]:
        stats = self.app.control.inspect(destination=[NODE], timeout=WAIT).stats()
        assert stats is not None, "the worker did not answer"
        return dict(stats[NODE])


@pytest.fixture(params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Project]:
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    app = importlib.import_module("proj").app
    fresh_queues(app)
    marks = redis.Redis.from_url(redis_url)
    try:
        yield Project(app, tmp_path, env, marks, redis_prefix)
    finally:
        marks.close()
        app.close()
        sys.modules.pop("proj", None)


def _wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)  # polling the worker's replies; nothing to await


def test_autoscale_forks_children_while_tasks_wait_and_lets_them_go(project: Project) -> None:
    worker = project.worker("-P", "prefork", "--autoscale=3,1", AUTOSCALE_KEEPALIVE="1")
    try:
        assert "{min=1, max=3} (prefork pool, autoscaled)" in worker.text
        assert project.stats()["autoscaler"]["current"] == 1
        slow = project.app.tasks["proj.slow"]
        results = [slow.delay(f"t{i}", 2.0) for i in range(3)]
        pids = {project.wait_mark("started").split(":")[1] for _ in range(3)}
        assert len(pids) == 3, worker.text  # three children ran the three tasks at once
        assert len(project.stats()["pool"]["processes"]) == 3, worker.text
        assert [r.get(timeout=20) for r in results] == ["t0", "t1", "t2"]
        _wait_for(lambda: len(project.stats()["pool"]["processes"]) == 1)
        assert project.stats()["autoscaler"] == {"max": 3, "min": 1, "current": 1, "qty": 0}
        worker.wait_for_log("Scaling down 2 processes.")
        done = project.cli("control", "autoscale", "2", "2", "-d", NODE, "-t", str(WAIT))
        assert done.returncode == 0 and "autoscale now max=2 min=2" in done.stdout, done
        _wait_for(lambda: len(project.stats()["pool"]["processes"]) == 2)
    finally:
        worker.stop()


RESTARTABLE = textwrap.dedent(
    """
    import os

    import restart_helper
    from proj import app

    app.conf.worker_pool_restarts = True


    @app.task(name="restartable.ask")
    def ask():
        return [restart_helper.VALUE, os.getpid()]
    """
)


@pytest.mark.parametrize("project", ["redis"], indirect=True)
def test_pool_restart_forks_new_children_that_run_the_reloaded_code(project: Project) -> None:
    (project.path / "restartable.py").write_text(RESTARTABLE)
    (project.path / "restart_helper.py").write_text("VALUE = 1\n")
    worker = project.worker("-P", "prefork", "-c", "2", "-I", "restartable")
    try:
        value, pid = project.app.send_task("restartable.ask").get(timeout=20)
        old = set(project.stats()["pool"]["processes"])
        assert value == 1 and pid in old
        (project.path / "restart_helper.py").write_text("VALUE = 22  # changed\n")
        replies = project.app.control.pool_restart(
            ["restart_helper"], reload=True, destination=[NODE], reply=True, timeout=WAIT
        )
        assert replies == [{NODE: {"ok": "reload started"}}]
        _wait_for(lambda: not old & set(project.stats()["pool"]["processes"]))
        assert len(project.stats()["pool"]["processes"]) == 2
        value, pid = project.app.send_task("restartable.ask").get(timeout=20)
        assert value == 22 and pid not in old
        worker.wait_for_log("prefork pool restarted: 2 children replaced")
    finally:
        worker.stop()


def test_worker_direct_gives_each_worker_a_queue_of_its_own(project: Project) -> None:
    other = "other@int"
    fresh_queues(project.app, f"{NODE}.dq2", f"{other}.dq2")
    one = project.worker("-P", "threads", "-c", "2", "--", "worker_direct=true")
    try:
        two = WorkerProcess.started(
            project.path, project.env, "-n", other, "-P", "threads", "--", "worker_direct=true"
        )
    except BaseException:
        one.stop()
        raise
    try:
        queues = project.app.control.inspect(destination=[NODE], timeout=WAIT).active_queues()
        assert queues is not None
        assert [q["name"] for q in queues[NODE]] == ["celery", f"{NODE}.dq2"]
        where = project.app.tasks["proj.where"]
        to_one = [where.apply_async(queue=f"{NODE}.dq2") for _ in range(6)]
        # Celery's other spelling: the C.dq2 exchange, the node name as routing key.
        to_two = [where.apply_async(exchange="C.dq2", routing_key=other) for _ in range(6)]
        assert {r.get(timeout=20)["hostname"] for r in to_one} == {NODE}
        assert {r.get(timeout=20)["hostname"] for r in to_two} == {other}
    finally:
        one.stop()
        two.stop()
