"""Results: AsyncResult states and waiting, exceptions as data, expiry, the get() guard."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.exceptions import (
    ImproperlyConfigured,
    RemoteTaskError,
    SyncSubtaskError,
    TimeoutError,
)
from celeriac.results.memory import MemoryBackend
from celeriac.testing import drain


class PaymentDeclined(Exception):
    pass


def test_pending_then_success_through_the_broker(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 2)
    assert (result.state, result.ready(), result.result) == (states.PENDING, False, None)
    assert drain(app) == 1
    assert result.get(timeout=1) == 4
    assert (result.status, result.successful(), result.failed()) == ("SUCCESS", True, False)
    assert result.date_done is not None and result.traceback is None


def test_get_waits_until_another_thread_finishes_the_task(app: Celery) -> None:
    @app.task
    def slow() -> str:
        return "done"

    result = slow.delay()
    timer = threading.Timer(0.05, drain, args=(app,))
    timer.start()
    try:
        assert result.get(timeout=5) == "done"
    finally:
        timer.join()


def test_get_honours_its_timeout(app: Celery) -> None:
    @app.task
    def never_run() -> None:
        return None

    with pytest.raises(TimeoutError, match=r"not ready within 0\.05s"):
        never_run.delay().get(timeout=0.05)


def test_failure_propagates_the_exception_or_returns_it(app: Celery) -> None:
    @app.task
    def fail() -> None:
        raise ValueError("bad input 42")

    result = fail.delay()
    drain(app)
    with pytest.raises(ValueError, match="bad input 42"):
        result.get(timeout=1)
    assert isinstance(result.get(propagate=False), ValueError)
    assert result.failed() and "ValueError: bad input 42" in (result.traceback or "")


def test_user_exception_types_come_back_as_remote_errors_with_their_names(app: Celery) -> None:
    @app.task
    def pay() -> None:
        raise PaymentDeclined("card 4242")

    result = pay.delay()
    drain(app)
    with pytest.raises(RemoteTaskError) as info:
        result.get(timeout=1)
    error = info.value
    assert type(error).__name__ == "PaymentDeclined"
    assert error.exc_module == __name__ and error.args == ("card 4242",)


def test_a_tampered_record_never_imports_the_module_it_names() -> None:
    backend = MemoryBackend()
    backend.store_result("t1", None, states.FAILURE)
    raw = backend._get("task:t1")
    assert raw is not None
    tampered = raw.replace(
        b'"result":null',
        b'"result":{"exc_type":"system","exc_module":"os","exc_message":["echo pwned"]}',
    )
    backend._set("task:t1", tampered, None, ready=True)
    exc = backend.get_task_meta("t1")["result"]
    assert isinstance(exc, RemoteTaskError)  # not os.system, not imported
    assert (exc.exc_module, exc.exc_type) == ("os", "system")


def test_forget_removes_the_result(app: Celery) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    drain(app)
    assert result.get(timeout=1) == 1
    result.forget()
    assert app.AsyncResult(result.id).state == states.PENDING


def test_results_expire_after_result_expires() -> None:
    now = [1000.0]
    backend = MemoryBackend(expires=10, clock=lambda: now[0])
    backend.mark_as_done("t", 5)
    assert backend.get_task_meta("t")["result"] == 5
    now[0] += 11
    assert backend.get_task_meta("t")["status"] == states.PENDING


def test_ignore_result_stores_nothing(app: Celery) -> None:
    @app.task(ignore_result=True)
    def fire_and_forget() -> int:
        return 1

    @app.task
    def normal() -> int:
        return 2

    ignored, per_call = fire_and_forget.delay(), normal.apply_async(ignore_result=True)
    drain(app)
    assert ignored.state == states.PENDING and per_call.state == states.PENDING
    app.conf.task_ignore_result = True
    globally = normal.delay()
    drain(app)
    assert globally.state == states.PENDING


def test_update_state_reports_progress(app: Celery) -> None:
    seen: list[Any] = []

    @app.task(bind=True)
    def crunch(self: Any, n: int) -> int:
        for done in range(1, n + 1):
            self.update_state(state="PROGRESS", meta={"done": done, "total": n})
            seen.append(app.AsyncResult(self.request.id).info)
        return n

    result = crunch.delay(3)
    drain(app)
    assert seen[-1] == {"done": 3, "total": 3}
    assert result.get(timeout=1) == 3


def test_get_inside_a_task_raises_a_clear_error(app: Celery) -> None:
    @app.task
    def child() -> int:
        return 1

    @app.task
    def parent() -> int:
        return child.delay().get(timeout=1)  # the classic anti-pattern

    result = parent.delay()
    drain(app, limit=1)
    with pytest.raises(SyncSubtaskError, match=r"Never call result\.get\(\) within a task"):
        result.get(timeout=1)


def test_get_inside_a_task_can_be_allowed_explicitly(app: Celery) -> None:
    @app.task
    def child() -> int:
        return 1

    @app.task
    def parent(child_id: str) -> int:
        return app.AsyncResult(child_id).get(timeout=1, disable_sync_subtasks=False)

    first = child.delay()
    drain(app)
    result = parent.delay(first.id)
    drain(app)
    assert result.get(timeout=1) == 1


def test_no_result_backend_explains_how_to_configure_one() -> None:
    app = Celery("nobackend", broker="memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 1)
    drain(app)  # storing is a no-op without a backend; reading explains
    with pytest.raises(ImproperlyConfigured, match="No result backend is configured"):
        result.get(timeout=1)


def test_result_equality_and_repr(app: Celery) -> None:
    result = app.AsyncResult("abc")
    assert (
        result == "abc"
        and result == app.AsyncResult("abc")
        and repr(result) == "<AsyncResult: abc>"
    )
