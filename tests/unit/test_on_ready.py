"""``on_ready`` of AsyncResult, ResultSet and GroupResult with a real worker: callbacks
chained with ``on_ready.then`` (or ``then``) fire once the handle sees the task finished."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.result import ResultSet
from celeriac.testing import start_worker


def make_app() -> Celery:
    app = Celery("on-ready", broker="memory://", backend="cache+memory://")

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="fail")
    def fail() -> None:
        raise ValueError("bad input")

    return app


def test_on_ready_fires_when_the_handle_sees_the_task_finished() -> None:
    app = make_app()
    seen: list[Any] = []
    with start_worker(app):
        result = app.tasks["add"].delay(2, 3)
        chained = result.on_ready.then(lambda r: r.result * 10)
        chained.then(seen.append)
        assert result.get(timeout=5) == 5
    assert seen == [50] and result.on_ready.ready and result.on_ready.value == ((result,), {})
    result.then(lambda r: seen.append(r.state))  # already fired: runs at once
    assert seen == [50, "SUCCESS"]


def test_on_ready_fires_for_a_failure_and_then_the_get_raises() -> None:
    app = make_app()
    states: list[str] = []
    with start_worker(app):
        result = app.tasks["fail"].delay()
        result.then(lambda r: states.append(r.state))
        with pytest.raises(ValueError, match="bad input"):
            result.get(timeout=5)
    assert states == ["FAILURE"]
    assert result.on_ready.failed and isinstance(result.on_ready.reason, ValueError)


def test_an_error_in_a_callback_goes_to_its_on_error() -> None:
    app = make_app()
    errors: list[BaseException] = []
    with start_worker(app):
        result = app.tasks["add"].delay(1, 1)
        result.then(lambda r: r.result / 0, on_error=errors.append)
        assert result.get(timeout=5) == 2  # the callback's error does not reach get()
    assert isinstance(errors[0], ZeroDivisionError)


def test_a_group_results_on_ready_fires_once_every_member_is_seen_finished() -> None:
    app = make_app()
    fired: list[Any] = []
    with start_worker(app, concurrency=2):
        results = group(app.tasks["add"].s(n, n) for n in range(3)).delay()
        results.on_ready.then(fired.append)
        results[0].get(timeout=5)
        assert fired == []  # one member seen finished is not enough
        assert results.get(timeout=5) == [0, 2, 4]
    assert fired == [results] and results.on_ready.ready


def test_a_result_set_waits_for_members_added_later() -> None:
    app = make_app()
    fired: list[ResultSet] = []
    with start_worker(app):
        first = app.tasks["add"].delay(1, 1)
        results = ResultSet([first], app=app)
        first.get(timeout=5)
        assert results.on_ready.ready  # its only member is seen finished
        results.add(app.tasks["add"].delay(2, 2))
        results.then(fired.append)  # the new on_ready waits for the new member
        assert fired == []
        assert results.join(timeout=5) == [2, 4]
    assert fired == [results]
    empty = ResultSet([], app=app)
    assert empty.on_ready.ready  # nothing to wait for
