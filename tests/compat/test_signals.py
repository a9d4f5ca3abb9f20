"""User guide, "Signals": receivers connected in a project (with and without a sender),
for the task signals, the publish signals and the worker signals — run by a real worker
started from the CLI, each receiver recording what it was sent in Redis."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os

import redis

from celeriac import Celery
from celeriac.signals import (
    after_setup_task_logger, after_task_publish, before_task_publish, task_failure,
    task_postrun, task_prerun, task_received, task_retry, task_success, worker_init,
    worker_process_init, worker_ready, worker_shutdown,
)

app = Celery("guide_signals")
app.config_from_object("celeryconfig")
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


def note(what):
    notes.rpush(f"{PREFIX}:signals", what)  # the record
    notes.rpush(f"{PREFIX}:events", what)  # for a test to wait on


@app.task(bind=True, max_retries=1, default_retry_delay=0)
def add(self, x, y, retry=False):
    if retry and not self.request.retries:
        raise self.retry(exc=KeyError("again"))
    return x + y


@app.task
def boom():
    raise ValueError("boom")


@before_task_publish.connect(sender="guide_signals.add")
def before_publish(sender=None, headers=None, body=None, routing_key=None, **kwargs):
    note(f"before_task_publish {sender} {headers['id']} {routing_key}")


@after_task_publish.connect
def after_publish(sender=None, headers=None, body=None, **kwargs):
    note(f"after_task_publish {sender} {headers['id']}")


@task_received.connect
def received(sender=None, request=None, **kwargs):
    note(f"task_received {request.id}")


@task_prerun.connect
def prerun(sender=None, task_id=None, task=None, args=None, kwargs=None, **extra):
    note(f"task_prerun {task.name} {task_id} {list(args)}")


@task_postrun.connect
def postrun(sender=None, task_id=None, task=None, retval=None, state=None, **extra):
    note(f"task_postrun {task.name} {task_id} {state} {retval!r}")


@task_success.connect(sender=add)  # the task object: the sender of task signals
def success(sender=None, result=None, **kwargs):
    note(f"task_success {sender.name} {result}")


@task_retry.connect
def retried(sender=None, request=None, reason=None, **kwargs):
    note(f"task_retry {request.id} {reason!r}")


@task_failure.connect
def failed(sender=None, task_id=None, exception=None, **kwargs):
    note(f"task_failure {sender.name} {task_id} {exception!r}")


@worker_init.connect
def init(sender=None, **kwargs):
    note("worker_init")


@worker_ready.connect
def ready(sender=None, **kwargs):
    note("worker_ready")


@worker_process_init.connect
def process_init(**kwargs):
    note(f"worker_process_init {os.getpid()}")


@worker_shutdown.connect
def shutdown(sender=None, **kwargs):
    note("worker_shutdown")


@after_setup_task_logger.connect
def task_logger(logger=None, loglevel=None, **kwargs):
    note(f"after_setup_task_logger {logger.name}")
"""


@pytest.fixture
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_signals", PROJECT) as guide:
        yield guide


def signals_seen(guide: Guide) -> list[str]:
    return list(guide.redis().lrange(f"{guide.prefix}:signals", 0, -1))


def await_signal(guide: Guide, prefix: str) -> None:
    """Wait until a receiver notes ``prefix`` (receivers may run after the result is in)."""
    client = guide.redis()
    while True:
        popped = client.blpop([f"{guide.prefix}:events"], timeout=20)
        assert popped is not None, f"{prefix!r} never came: {signals_seen(guide)}"
        if popped[1].startswith(prefix):
            return


def test_task_and_publish_signals_in_order(guide: Guide) -> None:
    proj = guide.module
    worker = guide.worker("-P", "prefork", "-c", "1")
    try:
        result = proj.add.delay(2, 3)
        assert result.get(timeout=20) == 5
        task_id = result.id
        await_signal(guide, "task_postrun")
        with pytest.raises(ValueError):
            proj.boom.delay().get(timeout=20)
        await_signal(guide, "task_failure")
    finally:
        assert worker.stop() == 0, worker.text
    seen = signals_seen(guide)
    mine = [line for line in seen if task_id in line or line.startswith("task_success")]
    published = [line for line in mine if "_task_publish" in line]
    ran = [line for line in mine if "_task_publish" not in line]  # (the two sides race)
    assert published == [
        f"before_task_publish guide_signals.add {task_id} celery",
        f"after_task_publish guide_signals.add {task_id}",
    ]
    assert ran == [
        f"task_received {task_id}",
        f"task_prerun guide_signals.add {task_id} [2, 3]",
        "task_success guide_signals.add 5",
        f"task_postrun guide_signals.add {task_id} SUCCESS 5",
    ]
    assert any(line.startswith("task_failure guide_signals.boom") for line in seen)
    assert "worker_init" in seen and "worker_ready" in seen and "worker_shutdown" in seen
    assert any(line.startswith("worker_process_init") for line in seen)
    assert any(line.startswith("after_setup_task_logger") for line in seen)


def test_retry_signal(guide: Guide) -> None:
    proj = guide.module
    worker = guide.worker("-P", "threads")
    try:
        result = proj.add.delay(1, 1, retry=True)
        assert result.get(timeout=20) == 2
    finally:
        worker.signal(signal.SIGTERM)
        assert worker.wait(30) == 0, worker.text
        worker.stop()
    assert f"task_retry {result.id} KeyError('again')" in signals_seen(guide)
