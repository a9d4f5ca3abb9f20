"""``task_remote_tracebacks``: with tblib installed, ``get()`` re-raises a task's error
with the worker's traceback rebuilt as frames (Celery's setting; off by default)."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import CeleryWarning
from celeriac.results import remote_traceback
from celeriac.testing import drain


def _failed_call(**conf: Any) -> tuple[Celery, Any]:
    app = Celery("tb", broker="memory://", backend="cache+memory://", set_as_current=False, **conf)

    @app.task
    def explode_deep_inside() -> None:
        raise ValueError("boom")

    result = explode_deep_inside.delay()
    drain(app)
    return app, result


def _frames(exc: BaseException) -> list[str]:
    return [frame.name for frame in traceback.extract_tb(exc.__traceback__)]


def test_on_the_error_carries_the_frames_where_the_task_raised() -> None:
    _, result = _failed_call(task_remote_tracebacks=True)
    with pytest.raises(ValueError, match="boom") as raised:
        result.get(timeout=5)
    assert _frames(raised.value)[-1] == "explode_deep_inside"
    with pytest.raises(ValueError) as again:
        result.maybe_throw()
    assert "explode_deep_inside" in _frames(again.value)


def test_off_by_default_the_error_is_raised_from_the_caller() -> None:
    _, result = _failed_call()
    with pytest.raises(ValueError) as raised:
        result.get(timeout=5)
    assert "explode_deep_inside" not in _frames(raised.value)
    assert "explode_deep_inside" in result.traceback  # the text is kept either way


def test_without_tblib_it_warns_once_and_raises_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(remote_traceback, "_tblib", None)
    monkeypatch.setattr(remote_traceback, "_warned", False)
    _, result = _failed_call(task_remote_tracebacks=True)
    with (
        pytest.warns(CeleryWarning, match=r"pip install 'celeriac\[tblib\]'"),
        pytest.raises(ValueError),
    ):
        result.get(timeout=5)


def test_a_traceback_that_cannot_be_read_back_is_left_out() -> None:
    app = Celery("tb", broker="memory://", set_as_current=False, task_remote_tracebacks=True)
    meta = {"traceback": "not a traceback at all"}
    assert remote_traceback.remote_traceback(meta, app.conf) is None
