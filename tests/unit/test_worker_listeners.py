"""The consumer tells its task listeners about each task: received, started, finished."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.testing.worker import start_worker


class Recorder:
    def __init__(self, expected: int) -> None:
        self.seen: list[tuple[str, str, str]] = []
        self.expected = expected
        self.done = threading.Event()

    def task_received(self, job: Any) -> None:
        self.seen.append(("received", job.task.name, ""))

    def task_started(self, job: Any) -> None:
        self.seen.append(("started", job.task.name, ""))

    def task_finished(self, job: Any, outcome: Any) -> None:
        self.seen.append(("finished", job.task.name, outcome.state))
        if sum(kind == "finished" for kind, _, _ in self.seen) == self.expected:
            self.done.set()


class Broken:
    def task_received(self, job: Any) -> None:
        raise RuntimeError("a listener's bug")

    task_started = task_finished = task_received


def test_each_task_reaches_the_listeners_with_its_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celery("listen", broker="memory://", backend="cache+memory://", set_as_current=False)

    @app.task
    def ok() -> int:
        return 1

    @app.task
    def boom() -> None:
        raise ValueError("no")

    recorder = Recorder(expected=2)
    with start_worker(app) as worker:
        worker.listeners.add(Broken())  # its errors are logged, never reach the task
        worker.listeners.add(recorder)
        ok.delay()
        boom.delay()
        assert recorder.done.wait(10)
    app.close()
    assert recorder.seen == [
        ("received", ok.name, ""), ("started", ok.name, ""), ("finished", ok.name, states.SUCCESS),
        ("received", boom.name, ""), ("started", boom.name, ""),
        ("finished", boom.name, states.FAILURE),
    ]  # fmt: skip
    assert "task listener" in caplog.text
