"""User guide, "Workers Guide": starting a worker with a node name, queues, concurrency and
a log file; warm shutdown that lets running tasks finish; revoking; time limits and
max-tasks-per-child on the prefork pool — each a real worker started from the CLI."""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator

import pytest

from celeriac import states
from celeriac.exceptions import TaskRevokedError, TimeLimitExceeded
from tests.compat.conftest import Guide, guide_project
from tests.integration.workers import WorkerProcess

PROJECT = """
import os
import time

import redis

from celeriac import Celery

app = Celery("guide_workers")
app.config_from_object("celeryconfig")
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


@app.task(bind=True)
def whoami(self):
    return {"hostname": self.request.hostname, "pid": os.getpid()}


@app.task
def long_job(tag, seconds):
    notes.rpush(f"{PREFIX}:started", tag)
    time.sleep(seconds)  # the task's own work
    notes.rpush(f"{PREFIX}:finished", tag)
    return tag


@app.task
def add(x, y):
    return x + y
"""


@pytest.fixture
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_workers", PROJECT) as guide:
        yield guide


def test_node_name_concurrency_queues_and_log_file(guide: Guide) -> None:
    proj = guide.module
    logfile = guide.path / "%n.log"
    args = [
        "-n",
        "worker1@%h",
        "-c",
        "2",
        "-P",
        "threads",
        "-Q",
        "images,video",
        "-f",
        str(logfile),
    ]
    worker = WorkerProcess(guide.path, guide.env, *args, app="guide_workers")
    try:  # it logs to the file, so the answers tell that it is up
        seen = proj.whoami.apply_async(queue="video").get(timeout=20)
        assert seen["hostname"] == f"worker1@{socket.gethostname()}"
        assert proj.add.apply_async((1, 2), queue="images").get(timeout=20) == 3
    finally:
        assert worker.stop() == 0
    log = (guide.path / "worker1.log").read_text()
    assert "ready" in log


def test_warm_shutdown_lets_the_running_task_finish(guide: Guide) -> None:
    proj = guide.module
    worker = guide.worker("-P", "prefork", "-c", "1")
    client = guide.redis()
    result = proj.long_job.delay("report", 1.5)
    assert client.blpop([f"{guide.prefix}:started"], timeout=20) is not None
    worker.signal(signal.SIGTERM)  # as systemd or Ctrl-C would
    assert worker.wait(30) == 0, worker.text
    worker.stop()  # (exited already: this closes its output)
    assert result.get(timeout=5) == "report"  # finished before the worker exited
    assert client.lrange(f"{guide.prefix}:finished", 0, -1) == ["report"]


def test_revoking_a_waiting_task_and_terminating_a_running_one(guide: Guide) -> None:
    proj = guide.module
    waiting = proj.add.apply_async((1, 1), countdown=60)
    proj.app.control.revoke(waiting.id)
    worker = guide.worker("-P", "prefork", "-c", "1")
    try:
        running = proj.long_job.delay("doomed", 30)
        assert guide.redis().blpop([f"{guide.prefix}:started"], timeout=20) is not None
        running.revoke(terminate=True, signal="SIGKILL")
        with pytest.raises(TaskRevokedError):
            running.get(timeout=20)
        assert running.state == states.REVOKED
        assert proj.add.delay(2, 2).get(timeout=20) == 4  # the pool replaced its child
    finally:
        assert worker.stop() == 0, worker.text
    assert waiting.state in (states.PENDING, states.REVOKED)  # never run
    assert not waiting.successful()


def test_time_limit_option_and_max_tasks_per_child(guide: Guide) -> None:
    proj = guide.module
    worker = guide.worker("-P", "prefork", "-c", "1", "--time-limit", "1",
                          "--max-tasks-per-child", "1")  # fmt: skip
    try:
        with pytest.raises(TimeLimitExceeded):
            proj.long_job.delay("too long", 10).get(timeout=20)
        pids = {proj.whoami.delay().get(timeout=20)["pid"] for _ in range(3)}
        assert len(pids) == 3  # a fresh child for every task
    finally:
        assert worker.stop() == 0, worker.text
