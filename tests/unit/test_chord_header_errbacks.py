"""``task_allow_error_cb_on_chord_header``: ``chord.link_error`` also links the errback
to each header task, so a failing header task calls it too (Celery's setting)."""

from __future__ import annotations

from typing import Any

from celeriac import Celery, chord
from celeriac.testing import drain


def _run(**conf: Any) -> tuple[list[str], str]:
    app = Celery("ch", broker="memory://", backend="cache+memory://", set_as_current=False, **conf)
    called: list[str] = []
    failed: list[str] = []

    @app.task
    def ok() -> int:
        return 1

    @app.task(bind=True)
    def fail(self: Any) -> None:
        failed.append(self.request.id)
        raise ValueError("header task failed")

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    @app.task
    def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
        called.append(request.id)

    workflow = chord([ok.s(), fail.s()], total.s())
    workflow.link_error(on_error.s())
    workflow.apply_async()
    drain(app)
    return called, failed[0]


def test_off_by_default_the_errback_runs_once_for_the_chord() -> None:
    called, failing_id = _run()
    assert len(called) == 1 and failing_id not in called


def test_on_the_failing_header_task_calls_it_too() -> None:
    called, failing_id = _run(task_allow_error_cb_on_chord_header=True)
    assert len(called) == 2 and failing_id in called
