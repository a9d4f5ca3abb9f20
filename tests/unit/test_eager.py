"""apply() and eager mode: same trace as the worker, retries, autoretry, propagation."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, EagerResult, states
from celeriac.exceptions import MaxRetriesExceededError


def test_apply_runs_locally_and_returns_an_eager_result(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply((2, 2))
    assert isinstance(result, EagerResult)
    assert (result.get(), result.state, result.ready()) == (4, states.SUCCESS, True)
    assert app.broker.queue_length("celery") == 0


def test_always_eager_makes_delay_run_here(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(3, 4)
    assert isinstance(result, EagerResult) and result.get() == 7
    assert app.broker.queue_length("celery") == 0


def test_eager_failure_is_returned_unless_propagation_is_on(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def fail() -> None:
        raise KeyError("missing")

    result = fail.delay()
    assert result.failed() and isinstance(result.result, KeyError)
    with pytest.raises(KeyError):
        result.get()
    app.conf.task_eager_propagates = True
    with pytest.raises(KeyError):
        fail.delay()


def test_store_eager_result_writes_to_the_backend(app: Celery) -> None:
    app.conf.update(task_always_eager=True, task_store_eager_result=True)

    @app.task
    def seven() -> int:
        return 7

    result = seven.delay()
    assert app.AsyncResult(result.id).get(timeout=1) == 7


def test_eager_result_is_not_stored_by_default(app: Celery) -> None:
    @app.task
    def seven() -> int:
        return 7

    result = seven.apply()
    assert app.AsyncResult(result.id).state == states.PENDING


def test_retry_in_eager_mode_runs_again_until_it_succeeds(app: Celery) -> None:
    attempts: list[int] = []

    @app.task(bind=True, max_retries=3)
    def flaky(self: Any) -> int:
        attempts.append(self.request.retries)
        if len(attempts) < 3:
            raise self.retry(exc=ConnectionError("down"), countdown=10)
        return len(attempts)

    assert flaky.apply().get() == 3
    assert attempts == [0, 1, 2]


def test_max_retries_exceeded_chains_the_original_exception(app: Celery) -> None:
    @app.task(bind=True, max_retries=2)
    def always_down(self: Any) -> None:
        raise self.retry(exc=ConnectionError("smtp down"), countdown=1)

    result = always_down.apply()
    assert result.state == states.FAILURE
    error = result.result
    assert isinstance(error, MaxRetriesExceededError)
    assert isinstance(error.__cause__, ConnectionError)
    assert "max_retries=2" in str(error)


def test_autoretry_for_retries_listed_exceptions_only(app: Celery) -> None:
    calls: list[int] = []

    @app.task(autoretry_for=(ConnectionError,), max_retries=5, retry_backoff=True)
    def fetch() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("flaky network")
        return "ok"

    @app.task(autoretry_for=(ConnectionError,))
    def broken() -> None:
        raise ValueError("a bug, not a network problem")

    assert fetch.apply().get() == "ok" and len(calls) == 3
    assert broken.apply().state == states.FAILURE


def test_link_callback_receives_the_result_in_eager_mode(app: Celery) -> None:
    app.conf.task_always_eager = True
    received: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task
    def record(value: int) -> None:
        received.append(value)

    add.apply_async((2, 3), link=record.s())
    assert received == [5]


def test_link_error_new_style_errback_gets_request_exc_traceback(app: Celery) -> None:
    app.conf.task_always_eager = True
    seen: list[tuple[str, str, bool]] = []

    @app.task
    def fail() -> None:
        raise RuntimeError("kaput")

    @app.task
    def on_error(request: Any, exc: BaseException, traceback: str) -> None:
        seen.append((request.id, str(exc), "RuntimeError" in traceback))

    result = fail.apply_async(link_error=on_error.s(), task_id="failing-id")
    assert result.failed()
    assert seen == [("failing-id", "kaput", True)]


def test_async_def_task_runs_in_eager_mode(app: Celery) -> None:
    @app.task
    async def fetch_page(url: str) -> str:
        return f"<html>{url}</html>"

    assert fetch_page.apply(("x",)).get() == "<html>x</html>"


def test_eager_calls_check_options_like_real_calls(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(TypeError, match="countdwon"):
        add.apply_async((1, 2), countdwon=5)
    with pytest.raises(ValueError, match="from 0 to 9"):
        add.apply_async((1, 2), priority=11)


def test_an_idempotency_key_holds_in_eager_mode_too(app: Celery) -> None:
    app.conf.task_always_eager = True
    runs: list[int] = []

    @app.task
    def welcome(user_id: int) -> int:
        runs.append(user_id)
        return user_id

    first = welcome.apply_async((42,), idempotency_key="welcome:42")
    second = welcome.apply_async((42,), idempotency_key="welcome:42")
    assert second.id == first.id and runs == [42]  # the second call did not run again
