"""Small Celery habits that projects rely on: ``~sig``, ``get()`` on a call whose result is
ignored, and ``get_current_task`` from the ``_state`` module."""

from __future__ import annotations

import time
from typing import Any

from celeriac import Celery, group
from celeriac._state import get_current_task, get_current_worker_task
from celeriac.testing import start_worker


def make_app() -> Celery:
    return Celery("compat", broker="memory://", backend="cache+memory://")


def test_invert_applies_a_signature_and_waits_for_its_value() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="threads", concurrency=2):
        assert ~add.s(1, 2) == 3
        assert ~group(add.s(n, n) for n in range(3)) == [0, 2, 4]
        assert ~(add.s(1, 2) | add.s(10)) == 13


def test_get_on_a_call_sent_with_ignore_result_returns_none_at_once() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(ignore_result=True)
    def quiet() -> int:
        return 1

    timeout = 5.0
    # No worker runs: nothing could arrive, so only knowing the result is ignored returns.
    started = time.monotonic()
    assert add.apply_async((1, 2), ignore_result=True).get(timeout=timeout) is None
    assert quiet.delay().get(timeout=timeout) is None
    assert time.monotonic() - started < timeout / 5
    # A handle built from the id alone knows nothing of it and waits as before.
    sent = add.apply_async((1, 2), ignore_result=True)
    assert not app.AsyncResult(sent.id).ignored
    assert not add.delay(1, 2).ignored


def test_get_current_task_names_the_running_task_and_none_outside() -> None:
    app = make_app()
    seen: dict[str, Any] = {}

    @app.task
    def probe() -> str:
        seen["task"] = get_current_task()
        seen["worker_task"] = get_current_worker_task()
        return "ok"

    assert get_current_task() is None
    with start_worker(app, pool="threads", concurrency=1):
        assert probe.delay().get(timeout=5) == "ok"
    assert seen == {"task": probe, "worker_task": probe}
    assert probe.apply().get() == "ok"  # eager: a current task, but not a worker's
    assert seen == {"task": probe, "worker_task": None}
    assert get_current_task() is None
