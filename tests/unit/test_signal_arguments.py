"""Signals sent outside the worker's loop carry Celery's arguments: the publish signals
(and the deprecated ``task_sent``), ``import_modules``, ``task_success``'s ``runtime``;
``task_rejected`` is the worker's, not a task raising ``Reject``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.exceptions import Reject
from celeriac.signals import Signal
from celeriac.testing import drain


@pytest.fixture
def heard() -> Iterator[Any]:
    """``heard(signal)``: the calls ``signal`` gets during the test, as (sender, kwargs)."""
    connected: list[tuple[Signal, Any]] = []

    def listen(signal: Signal) -> list[tuple[Any, dict[str, Any]]]:
        calls: list[tuple[Any, dict[str, Any]]] = []

        def receiver(sender: Any = None, **kwargs: Any) -> None:
            kwargs.pop("signal")
            calls.append((sender, kwargs))

        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
        return calls

    yield listen
    for signal, receiver in connected:
        signal.disconnect(receiver)


def test_publish_signals_carry_the_body_and_the_merged_retry_policy(
    app: Celery, heard: Any
) -> None:
    before, after, sent = (
        heard(signals.before_task_publish), heard(signals.after_task_publish),
        heard(signals.task_sent),
    )  # fmt: skip
    result = app.send_task("proj.add", (2, 3), {"z": 1}, retry_policy={"max_retries": 7})
    [(sender, kw)] = before
    assert sender == "proj.add" and kw["body"] == ((2, 3), {"z": 1}, {})
    assert kw["retry_policy"] == {**app.conf.task_publish_retry_policy, "max_retries": 7}
    assert sorted(kw) == [
        "body", "declare", "exchange", "headers", "properties", "retry_policy", "routing_key",
    ]  # fmt: skip
    assert kw["headers"]["id"] == result.id and kw["routing_key"] == "celery"
    [(sender, kw)] = after
    assert sorted(kw) == ["body", "exchange", "headers", "routing_key"]
    assert kw["body"] == ((2, 3), {"z": 1}, {})
    [(sender, kw)] = sent
    assert sender == "proj.add" and kw == {
        "task_id": result.id, "task": "proj.add", "args": (2, 3), "kwargs": {"z": 1},
        "eta": None, "taskset": None,
    }  # fmt: skip


def test_import_modules_fires_once_before_the_imports_and_its_errors_stop_them(
    heard: Any,
) -> None:
    calls = heard(signals.import_modules)
    app = Celery("mods", broker="memory://", set_as_current=False)
    app.finalize()
    app.finalize()
    assert calls == [(app, {})]

    def broken(sender: Any = None, **kwargs: Any) -> None:
        raise RuntimeError("django.setup() failed")

    signals.import_modules.connect(broken, weak=False)
    try:
        other = Celery("mods", broker="memory://", set_as_current=False, imports=["nowhere"])
        with pytest.raises(RuntimeError, match=r"django\.setup"):
            other.finalize()
    finally:
        signals.import_modules.disconnect(broken)


def test_task_success_has_the_runtime(app: Celery, heard: Any) -> None:
    calls = heard(signals.task_success)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    drain(app)
    [(sender, kw)] = calls
    assert sender is add and kw["result"] == 3 and kw["runtime"] >= 0


def test_a_task_raising_reject_sends_no_task_rejected(app: Celery, heard: Any) -> None:
    calls = heard(signals.task_rejected)

    @app.task
    def refuse() -> None:
        raise Reject("bad input", requeue=False)

    refuse.delay()
    drain(app)
    assert calls == []


def test_the_signals_nothing_could_send_are_absent() -> None:
    for name in ("eventlet_pool_started", "eventlet_pool_apply"):
        assert not hasattr(signals, name), name
