"""``task_annotations`` with ``'@method'`` keys on a real worker (Redis broker): the
wrapper runs around each call the worker makes, and around the failure hook."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from celeriac import Celery
from celeriac.testing import start_worker


def test_at_call_and_at_on_failure_wrap_the_worker_s_calls(
    redis_url: str, redis_prefix: str
) -> None:
    calls: list[tuple[Any, ...]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def log_call(call: Any) -> Any:
        def logged(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                calls.append((self.name, self.request.id, args, kwargs))
            return call(self, *args, **kwargs)

        return logged

    def note_failure(on_failure: Any) -> Any:
        def noted(self: Any, exc: BaseException, task_id: str, *rest: Any) -> None:
            failures.append(f"{task_id}: {exc!r}")
            on_failure(self, exc, task_id, *rest)

        return noted

    app = Celery(
        "annw", broker=redis_url, backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix},
        task_annotations={"annw.add": {"@__call__": log_call}, "*": {"@on_failure": note_failure}},
    )  # fmt: skip

    @app.task(name="annw.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="annw.boom")
    def boom() -> None:
        raise ValueError("no")

    with start_worker(app, concurrency=2):
        first, second = add.delay(1, 2), add.apply_async((3,), {"y": 4})
        failed = boom.delay()
        assert (first.get(timeout=10), second.get(timeout=10)) == (3, 7)
        with pytest.raises(ValueError, match="no"):
            failed.get(timeout=10)
    assert sorted(calls) == sorted(
        [("annw.add", first.id, (1, 2), {}), ("annw.add", second.id, (3,), {"y": 4})]
    )
    assert failures == [f"{failed.id}: ValueError('no')"]
    app.close()
