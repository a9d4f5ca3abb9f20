"""Celery's smaller helpers a project imports: abortable tasks, ``allow_join_result``,
state precedence, the exception and warning bases, with a real worker where they act."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.contrib.abortable import ABORTED, AbortableAsyncResult, AbortableTask
from celeriac.exceptions import (
    CeleryWarning,
    Ignore,
    Reject,
    Retry,
    SyncSubtaskError,
    TaskPredicate,
    reraise,
)
from celeriac.result import allow_join_result, denied_join_result
from celeriac.testing import start_worker


def test_an_aborted_task_sees_it_and_stops_early(app: Celery) -> None:
    started = threading.Event()

    @app.task(bind=True, base=AbortableTask)
    def long_report(self: AbortableTask) -> str:
        started.set()
        for _ in range(10_000):
            if self.is_aborted():
                return "stopped early"
            time.sleep(0.01)  # a step of the task's own work
        return "finished"

    with start_worker(app, pool="threads"):
        result = long_report.delay()
        assert isinstance(result, AbortableAsyncResult)
        assert started.wait(10)
        assert not result.is_aborted()
        result.abort()
        assert result.get(timeout=10) == "stopped early"
    assert result.state == states.SUCCESS  # the task's own end replaces ABORTED


def test_abort_before_the_task_runs_is_seen_when_it_starts(app: Celery) -> None:
    @app.task(bind=True, base=AbortableTask)
    def checks(self: AbortableTask) -> bool:
        return self.is_aborted()

    result = checks.delay()
    result.abort()
    assert result.state == ABORTED
    with start_worker(app, pool="threads"):
        assert result.get(timeout=10) is True


def test_allow_join_result_lets_a_task_wait_and_denied_forbids_it_again(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def waits(mode: str) -> Any:
        child = add.delay(1, 2)
        if mode == "allowed":
            with allow_join_result():
                return child.get(timeout=10)
        with allow_join_result(), denied_join_result():
            try:
                child.get(timeout=10)
            except SyncSubtaskError:
                return "refused"
        return "waited"

    with start_worker(app, pool="threads", concurrency=2):
        assert waits.delay("allowed").get(timeout=10) == 3
        assert waits.delay("denied").get(timeout=10) == "refused"


def test_states_compare_by_precedence() -> None:
    assert states.state(states.PENDING) < states.state(states.SUCCESS)
    assert states.state("PROGRESS") > states.state(states.STARTED)  # custom: above started
    assert states.state(states.FAILURE) <= states.state(states.SUCCESS)
    assert sorted([states.PENDING, states.SUCCESS, states.RETRY], key=states.precedence) == [
        states.SUCCESS,
        states.RETRY,
        states.PENDING,
    ]


def test_exception_and_warning_bases() -> None:
    assert all(issubclass(kind, TaskPredicate) for kind in (Retry, Reject, Ignore))
    from celeriac.config import NotInEffectWarning, UnknownSettingWarning

    assert issubclass(NotInEffectWarning, CeleryWarning)
    assert issubclass(UnknownSettingWarning, CeleryWarning)
    error = ValueError("again")
    with pytest.raises(ValueError, match="again"):
        reraise(ValueError, error)


def test_two_callables_under_one_name_warn_once_and_the_first_keeps_it(app: Celery) -> None:
    from celeriac.exceptions import DuplicateTaskNameWarning

    @app.task(name="reports.build")
    def first() -> str:
        return "first"

    with pytest.warns(DuplicateTaskNameWarning, match="'reports.build' is already registered"):

        @app.task(name="reports.build")
        def second() -> str:
            return "second"

    assert second is first and first.apply().get() == "first"

    @app.task(name="reports.build")  # warned already: once per name
    def third() -> str:
        return "third"

    same = app.tasks["reports.build"]
    assert app.task(name="reports.build")(same.__wrapped__) is same  # the same function: quiet


def test_send_task_in_eager_mode_sends_and_says_so(app: Celery) -> None:
    from celeriac.exceptions import AlwaysEagerIgnored

    app.conf.task_always_eager = True
    with pytest.warns(AlwaysEagerIgnored, match="no effect on send_task"):
        app.send_task("somewhere.else", (1,))
    assert app.broker.queue_length("celery") == 1
