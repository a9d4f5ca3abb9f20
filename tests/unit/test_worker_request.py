"""Custom request classes: how ``Task.Request`` is found and checked, what a request
tells its hooks, the base class's routing (a failure that is a ``Retry`` reaches
``on_retry``), and the hooks on the in-process pools; ``retry_on_worker_lost`` settings.

The prefork pool and the SIGKILL of its children are in
``tests/integration/test_custom_requests.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Any

import pytest

from celeriac import Celery, Task
from celeriac.einfo import ExceptionInfo
from celeriac.exceptions import ImproperlyConfigured, Retry
from celeriac.testing import start_worker
from celeriac.worker.execution import HeldJob, prepare
from celeriac.worker.request import Request, check_request_classes, for_job, request_class


class Recording(Request):
    """Records each hook call (the worker calls them from more than one thread)."""

    calls: list[tuple[str, Any]] = []
    seen = threading.Event()

    def on_accepted(self, pid: int, time_accepted: float) -> None:
        super().on_accepted(pid, time_accepted)
        self.calls.append(("accepted", pid))

    def on_timeout(self, soft: bool, timeout: float) -> None:
        self.calls.append(("timeout", (soft, timeout)))

    def on_retry(self, exc_info: ExceptionInfo) -> None:
        self.calls.append(("retry", type(exc_info.exception).__name__))

    def on_failure(
        self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
        self.calls.append(("failure", type(exc_info.exception).__name__))
        self.seen.set()


def held_job(app: Celery, result_id: str) -> HeldJob:
    async def fetch() -> HeldJob:
        [delivery] = await app.broker.fetch(["celery"], 1, timeout=0)
        job = prepare(app, delivery, hostname="w1@host")
        assert isinstance(job, HeldJob) and job.id == result_id
        return job

    return asyncio.run(fetch())


def test_task_request_is_the_base_class_by_default_and_then_nothing_is_built(
    app: Celery,
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert Task.Request == "celeriac.worker.request:Request"  # Celery's shape: a path
    assert request_class(add) is Request
    assert for_job(held_job(app, add.delay(1, 2).id), "w1@host") is None


def test_task_request_may_be_a_class_or_its_path(app: Celery) -> None:
    @app.task(Request=Recording)
    def by_class() -> None: ...

    @app.task(Request=f"{__name__}:Recording")
    def by_path() -> None: ...

    assert request_class(by_class) is Recording
    assert request_class(by_path) is Recording


@pytest.mark.parametrize(
    ("named", "error"),
    [
        ("no_such_module:Request", "cannot be imported"),
        (f"{__name__}:held_job", "must be a subclass of celeriac.worker.request.Request"),
        (dict, "must be a subclass of celeriac.worker.request.Request"),
    ],
)
def test_a_bad_task_request_stops_the_worker_start_with_a_clear_error(
    app: Celery, named: Any, error: str
) -> None:
    @app.task(Request=named)
    def broken() -> None: ...

    with pytest.raises(ImproperlyConfigured, match=error) as raised:
        check_request_classes(app)
    assert broken.name in str(raised.value)


def test_a_request_has_the_attributes_celery_users_read(app: Celery) -> None:
    @app.task(Request=Recording)
    def add(x: int, y: int = 0) -> int:
        return x + y

    expires = dt.datetime(2999, 1, 1, tzinfo=dt.timezone.utc)
    sent = add.apply_async((1,), {"y": 2}, expires=expires, headers={"tenant": "acme"})
    job = held_job(app, sent.id)
    request = for_job(job, "w1@host")
    assert isinstance(request, Recording)
    assert (request.id, request.task_id) == (sent.id, sent.id)
    assert (request.name, request.task_name, request.type) == (add.name, add.name, add.name)
    assert request.task is add and request.app is app
    assert (request.args, request.kwargs) == ((1,), {"y": 2})
    assert request.hostname == "w1@host"
    assert request.eta is None and request.expires == expires
    assert (request.worker_pid, request.time_start, request.acknowledged) == (None, None, False)
    found = request.request_dict
    assert (found["id"], found["task"], found["tenant"]) == (sent.id, add.name, "acme")
    assert found["args"] == (1,) and found["kwargs"] == {"y": 2}
    assert found["hostname"] == "w1@host" and found["delivery_info"]["routing_key"] == "celery"
    assert request.info()["id"] == sent.id and request.info(safe=True)["args"] == "(1,)"
    assert str(request).startswith(f"{add.name}[{sent.id}] expires:[2999-01-01")
    assert repr(request) == f"<Recording: {add.name}[{sent.id}] (1,) {{'y': 2}}>"

    request.on_accepted(1234, time.monotonic() - 2)
    assert request.worker_pid == 1234
    assert request.time_start == pytest.approx(time.time() - 2, abs=0.5)


def test_the_base_class_routes_a_failed_run_to_on_failure_and_a_retry_on_to_on_retry(
    app: Celery,
) -> None:
    @app.task(Request=Recording)
    def noop() -> None: ...

    request = for_job(held_job(app, noop.delay().id), None)
    assert isinstance(request, Recording)
    Recording.calls.clear()
    request.on_success((False, "None", 0.1))
    request.on_success((True, ExceptionInfo(ValueError("x")), 0.1))
    request.on_success((True, ExceptionInfo(Retry("again")), 0.1))
    assert Recording.calls == [
        ("failure", "ValueError"),
        ("retry", "Retry"),
        ("failure", "Retry"),
    ]


@pytest.mark.parametrize("pool", ["solo", "asyncio"])
def test_the_in_process_pools_call_on_accepted_and_both_timeouts(app: Celery, pool: str) -> None:
    Recording.calls.clear()
    Recording.seen.clear()

    if pool == "asyncio":

        @app.task(Request=Recording, soft_time_limit=0.2, time_limit=5)
        async def slow() -> None:
            await asyncio.sleep(5)

    else:

        @app.task(Request=Recording, soft_time_limit=0.2, time_limit=5)
        def slow() -> None:
            for _ in range(100):
                time.sleep(0.05)

    with start_worker(app, pool=pool):
        slow.delay().get(timeout=10, propagate=False)
        assert Recording.seen.wait(10)  # on_failure comes once the message is settled
    kinds = [kind for kind, _ in Recording.calls]
    assert kinds == ["accepted", "timeout", "failure"]
    assert Recording.calls[1] == ("timeout", (True, 0.2))


def test_retry_on_worker_lost_comes_from_the_setting_unless_the_task_says(app: Celery) -> None:
    @app.task
    def plain() -> None: ...

    @app.task(retry_on_worker_lost=False)
    def never() -> None: ...

    assert plain.resolve("retry_on_worker_lost") is False  # Celery's default
    app.conf.task_retry_on_worker_lost = True
    assert plain.resolve("retry_on_worker_lost") is True
    assert never.resolve("retry_on_worker_lost") is False
