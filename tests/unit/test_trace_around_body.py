"""``trace``'s hook around the task body (``around_body``), which the pools use for time
limits: it wraps exactly the body, and what it raises there is the body's failure, recorded
with the task's hooks, the ``task_failure`` signal and the errbacks.

The hooks here are small real ones: a SIGALRM timer that raises inside a sync body (as the
prefork child's soft limit does), and a timer that cancels an async body's asyncio task.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest

from celeriac import Celery, Task, signals, states
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.testing import drain
from celeriac.trace import Outcome, OutcomeKind, trace_task, trace_task_async
from celeriac.worker.execution import Job, prepare

LIMIT = 0.05  # seconds: when the hooks below interrupt the body


class AlarmInBody:
    """Raises SoftTimeLimitExceeded inside the body after ``LIMIT`` seconds (SIGALRM)."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __enter__(self) -> None:
        self.events.append("enter")
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.setitimer(signal.ITIMER_REAL, LIMIT)

    def __exit__(self, *exc_info: object) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
        self.events.append("exit")

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        raise SoftTimeLimitExceeded()


class CancelInBody:
    """Cancels the body's asyncio task after ``LIMIT`` seconds and turns that cancellation
    into SoftTimeLimitExceeded as it leaves the body."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.timer: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> None:
        self.events.append("enter")
        task = asyncio.current_task()
        assert task is not None
        self.timer = asyncio.get_running_loop().call_later(LIMIT, task.cancel)

    async def __aexit__(self, kind: Any, exc: BaseException | None, tb: Any) -> None:
        assert self.timer is not None
        self.timer.cancel()
        self.events.append("exit")
        if isinstance(exc, asyncio.CancelledError):
            uncancel = getattr(asyncio.current_task(), "uncancel", None)  # Python 3.11+
            if uncancel is not None:
                uncancel()  # ours is spent
            raise SoftTimeLimitExceeded() from None


@pytest.fixture
def events() -> Iterator[list[str]]:
    """What happened, in order: the signals, the task's hooks, the hook and the body."""
    seen: list[str] = []

    def on(name: str) -> Any:
        def receiver(**kwargs: Any) -> None:
            seen.append(name)

        return receiver

    receivers = {
        signals.task_prerun: on("prerun"),
        signals.task_postrun: on("postrun"),
        signals.task_success: on("success"),
        signals.task_failure: on("task_failure"),
    }
    for sig, receiver in receivers.items():
        sig.connect(receiver, weak=False)
    try:
        yield seen
    finally:
        for sig, receiver in receivers.items():
            sig.disconnect(receiver)


def make_base(events: list[str]) -> type[Task]:
    class Recorded(Task):
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            events.append("before_start")

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            events.append(f"on_failure:{type(exc).__name__}")

    return Recorded


def received_job(app: Celery) -> Job:
    """The one message on the default queue, as the worker prepares it."""

    async def fetch() -> Job:
        [delivery] = await app.broker.fetch(["celery"], 1, timeout=0)
        job = prepare(app, delivery)
        assert isinstance(job, Job)
        return job

    return asyncio.run(fetch())


def errback_task(app: Celery, called: list[str]) -> Any:
    @app.task
    def report_failure(task_id: str) -> None:
        called.append(task_id)

    return report_failure


def assert_failed_with_every_hook(
    app: Celery, outcome: Outcome, task_id: str, called: list[str]
) -> None:
    assert outcome.kind is OutcomeKind.FAILURE
    assert isinstance(outcome.exc, SoftTimeLimitExceeded)
    result = app.AsyncResult(task_id)
    assert result.state == states.FAILURE
    assert isinstance(result.result, SoftTimeLimitExceeded)
    assert drain(app) == 1 and called == [task_id]  # the errback was sent, and it ran


def test_a_limit_the_hook_raises_inside_a_sync_body_is_recorded_with_every_hook(
    app: Celery, events: list[str]
) -> None:
    called: list[str] = []
    report_failure = errback_task(app, called)

    @app.task(base=make_base(events))
    def render() -> str:
        events.append("body")
        time.sleep(5)  # the alarm interrupts this
        events.append("body went on")
        return "done"

    sent = render.apply_async(link_error=report_failure.s())
    job = received_job(app)
    began = time.monotonic()
    outcome = trace_task(job.task, job.request, around_body=AlarmInBody(events))
    assert time.monotonic() - began < 2
    assert events == [
        "prerun", "before_start", "enter", "body", "exit",
        "on_failure:SoftTimeLimitExceeded", "task_failure", "postrun",
    ]  # fmt: skip
    assert_failed_with_every_hook(app, outcome, sent.id, called)


def test_a_limit_the_hook_raises_inside_an_async_body_is_recorded_with_every_hook(
    app: Celery, events: list[str]
) -> None:
    called: list[str] = []
    report_failure = errback_task(app, called)

    @app.task(base=make_base(events))
    async def crawl() -> str:
        events.append("body")
        await asyncio.sleep(5)  # the cancellation lands here
        events.append("body went on")
        return "done"

    sent = crawl.apply_async(link_error=report_failure.s())
    job = received_job(app)
    began = time.monotonic()
    outcome = asyncio.run(trace_task_async(job.task, job.request, around_body=CancelInBody(events)))
    assert time.monotonic() - began < 2
    assert events == [
        "prerun", "before_start", "enter", "body", "exit",
        "on_failure:SoftTimeLimitExceeded", "task_failure", "postrun",
    ]  # fmt: skip
    assert_failed_with_every_hook(app, outcome, sent.id, called)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_hook_wraps_exactly_the_body_of_a_task_that_succeeds(
    app: Celery, events: list[str], kind: str
) -> None:
    if kind == "sync":

        @app.task(base=make_base(events))
        def add(x: int, y: int) -> int:
            events.append("body")
            return x + y

        add.delay(2, 3)
        job = received_job(app)
        outcome = trace_task(job.task, job.request, around_body=AlarmInBody(events))
    else:

        @app.task(base=make_base(events))
        async def add_async(x: int, y: int) -> int:
            await asyncio.sleep(0)
            events.append("body")
            return x + y

        add_async.delay(2, 3)
        job = received_job(app)
        outcome = asyncio.run(
            trace_task_async(job.task, job.request, around_body=CancelInBody(events))
        )
    assert outcome.kind is OutcomeKind.SUCCESS and outcome.retval == 5
    # The signals, before_start and the recording stay outside: a limit never lands there.
    assert events == ["prerun", "before_start", "enter", "body", "exit", "success", "postrun"]
    assert app.AsyncResult(job.request.id).get(timeout=1) == 5
