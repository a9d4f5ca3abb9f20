"""User guide, "Tasks": bound tasks and the request, logging, retrying (by hand, with
autoretry_for and backoff), custom states, the semipredicates (Ignore, Reject), the
handlers, time limits and task options — run by a real worker started from the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import states
from celeriac.exceptions import MaxRetriesExceededError, TimeoutError
from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os
import time

import redis

from celeriac import Celery, Task
from celeriac.exceptions import Ignore, Reject, SoftTimeLimitExceeded
from celeriac.utils.log import get_task_logger

app = Celery("guide_tasks")
app.config_from_object("celeryconfig")
logger = get_task_logger(__name__)
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


def note(what):
    notes.rpush(f"{PREFIX}:notes", what)  # the record
    notes.rpush(f"{PREFIX}:events", what)  # for a test to wait on


class NotedTask(Task):
    def before_start(self, task_id, args, kwargs):
        note(f"before_start {self.name}")

    def on_success(self, retval, task_id, args, kwargs):
        note(f"on_success {self.name} {retval}")

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        note(f"on_failure {self.name} {type(exc).__name__}")

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        note(f"on_retry {exc}")

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        note(f"after_return {self.name} {status}")


@app.task(bind=True)
def describe(self, x, y=0):
    logger.info("describing %s", self.request.id)
    return {
        "id": self.request.id,
        "args": list(self.request.args),
        "kwargs": self.request.kwargs,
        "retries": self.request.retries,
        "hostname": self.request.hostname,
        "queue": self.request.delivery_info.get("routing_key"),
        "is_eager": self.request.is_eager,
    }


@app.task(bind=True, base=NotedTask, max_retries=3, default_retry_delay=0)
def flaky(self, fail_times):
    if self.request.retries < fail_times:
        raise self.retry(exc=ConnectionError(f"try {self.request.retries}"), countdown=0)
    return self.request.retries


@app.task(bind=True, max_retries=2)
def always_fails(self):
    raise self.retry(exc=KeyError("missing"), countdown=0)


@app.task(
    bind=True, autoretry_for=(ConnectionError,), retry_backoff=0.01, retry_jitter=False,
    retry_kwargs={"max_retries": 4},
)
def autoretried(self, succeed_on):
    if self.request.retries < succeed_on:
        raise ConnectionError("network down")
    return self.request.retries


@app.task(base=NotedTask)
def handled(fail):
    if fail:
        raise ValueError("asked to fail")
    return "ok"


@app.task(bind=True)
def progress(self, steps):
    for done in range(1, steps + 1):
        self.update_state(state="PROGRESS", meta={"done": done, "total": steps})
    return steps


@app.task
def ignored():
    raise Ignore()


@app.task(acks_late=True)
def rejected():
    raise Reject("bad input", requeue=False)


@app.task(soft_time_limit=0.3, time_limit=5)
def soft_limited():
    try:
        until = time.monotonic() + 5
        while time.monotonic() < until:  # the task's own work, cut short by the soft limit
            pass
    except SoftTimeLimitExceeded:
        return "cleaned up"


@app.task(ignore_result=True)
def fire_and_forget(x):
    note(f"fired {x}")
    return x


@app.task(throws=(KeyError,))
def expected_error():
    raise KeyError("an expected error")
"""


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_tasks", PROJECT) as guide:
        worker = guide.worker("-P", "threads", "-c", "4", "-n", "tasks@guide")
        try:
            yield guide
        finally:
            assert worker.stop() == 0, worker.text


def notes(guide: Guide) -> list[str]:
    return list(guide.redis().lrange(f"{guide.prefix}:notes", 0, -1))


def await_notes(guide: Guide, count: int, about: str) -> list[str]:
    """The next ``count`` notes that mention ``about``, as the worker writes them (handlers
    run after the result is stored, as in Celery, so a test waits for them)."""
    client, taken = guide.redis(), []
    while len(taken) < count:
        popped = client.blpop([f"{guide.prefix}:events"], timeout=20)
        assert popped is not None, f"only {taken} were noted"
        if about in popped[1]:
            taken.append(popped[1])
    return taken


def test_a_bound_task_reads_its_request(guide: Guide) -> None:
    proj = guide.module
    result = proj.describe.apply_async((1,), {"y": 2}, task_id="my-own-id")
    seen = result.get(timeout=20)
    assert seen == {
        "id": "my-own-id",
        "args": [1],
        "kwargs": {"y": 2},
        "retries": 0,
        "hostname": "tasks@guide",
        "queue": "celery",
        "is_eager": False,
    }


def test_arguments_are_checked_when_the_call_is_made(guide: Guide) -> None:
    with pytest.raises(TypeError):
        guide.module.describe.delay()  # x is missing: refused here, not in the worker


def test_retry_by_hand_counts_retries_and_calls_on_retry(guide: Guide) -> None:
    proj = guide.module
    assert proj.flaky.delay(2).get(timeout=20) == 2
    assert [n for n in notes(guide) if n.startswith("on_retry")] == [
        "on_retry try 0",
        "on_retry try 1",
    ]


def test_retries_end_after_max_retries(guide: Guide) -> None:
    # celeriac ends with MaxRetriesExceededError caused by the last error (a documented
    # difference: Celery re-raises the last error itself).
    result = guide.module.always_fails.delay()
    with pytest.raises(MaxRetriesExceededError, match="max_retries=2"):
        result.get(timeout=20)
    assert result.state == states.FAILURE


def test_autoretry_for_with_backoff(guide: Guide) -> None:
    assert guide.module.autoretried.delay(3).get(timeout=20) == 3


def test_handlers_run_in_order_on_success_and_failure(guide: Guide) -> None:
    proj = guide.module
    assert proj.handled.delay(False).get(timeout=20) == "ok"
    # The handlers run after the result is stored: the next call waits for them, or its
    # before_start could come first.
    assert await_notes(guide, 3, "guide_tasks.handled") == [
        "before_start guide_tasks.handled",
        "on_success guide_tasks.handled ok",
        "after_return guide_tasks.handled SUCCESS",
    ]
    with pytest.raises(ValueError, match="asked to fail"):
        proj.handled.delay(True).get(timeout=20)
    assert await_notes(guide, 3, "guide_tasks.handled") == [
        "before_start guide_tasks.handled",
        "on_failure guide_tasks.handled ValueError",
        "after_return guide_tasks.handled FAILURE",
    ]


def test_custom_states_are_visible_while_the_task_runs(guide: Guide) -> None:
    result = guide.module.progress.delay(3)
    assert result.get(timeout=20) == 3
    assert result.state == states.SUCCESS


def test_ignore_leaves_no_result_and_reject_fails_nothing_else(guide: Guide) -> None:
    proj = guide.module
    ignored = proj.ignored.delay()
    with pytest.raises(TimeoutError):
        ignored.get(timeout=1)  # Ignore: no state is ever stored, as in Celery
    assert ignored.state == states.PENDING
    assert proj.describe.delay(5).get(timeout=20)["args"] == [5]  # the worker carries on


def test_a_soft_time_limit_lets_the_task_clean_up(guide: Guide) -> None:
    assert guide.module.soft_limited.delay().get(timeout=20) == "cleaned up"


def test_ignore_result_runs_the_task_and_stores_nothing(guide: Guide) -> None:
    proj = guide.module
    result = proj.fire_and_forget.delay(42)
    assert result.get(timeout=5) is None  # nothing to wait for: returns at once
    assert proj.describe.delay(0).get(timeout=20)  # the worker ran everything sent before
    assert "fired 42" in notes(guide)


def test_expected_errors_fail_the_task_without_a_traceback_in_the_log(guide: Guide) -> None:
    result = guide.module.expected_error.delay()
    with pytest.raises(KeyError):
        result.get(timeout=20)
    assert result.failed()
