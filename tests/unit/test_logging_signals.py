"""Task logging carries name and id; signals fire with Celery's arguments."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.log import TaskFormatter
from celeriac.signals import Signal
from celeriac.testing import drain
from celeriac.utils.log import get_task_logger

logger = get_task_logger(__name__)


def test_task_log_records_carry_task_name_and_id(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def send_email(to: str) -> None:
        logger.info("Sending email to %s", to)

    result = send_email.delay("user@test.com")
    with caplog.at_level(logging.INFO, logger=__name__):
        drain(app)
    [record] = [r for r in caplog.records if r.name == __name__]
    assert record.task_name == send_email.name
    assert record.task_id == result.id
    formatted = TaskFormatter("%(task_name)s[%(task_id)s]: %(message)s").format(record)
    assert formatted == f"{send_email.name}[{result.id}]: Sending email to user@test.com"


def test_outside_a_task_the_ids_read_question_marks() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert (
        TaskFormatter("%(task_name)s[%(task_id)s] %(message)s").format(record) == "???[???] hello"
    )


def test_failures_log_the_full_traceback(app: Celery, caplog: pytest.LogCaptureFixture) -> None:
    @app.task
    def explode() -> None:
        raise ZeroDivisionError("division by zero in report")

    explode.delay()
    with caplog.at_level(logging.ERROR, logger="celeriac.app.trace"):
        drain(app)
    [record] = caplog.records
    assert "raised unexpected" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_execution_signals_fire_in_order_with_celery_arguments(app: Celery) -> None:
    events: list[tuple[str, Any]] = []

    def on(name: str) -> Any:
        def receiver(sender: Any = None, **kwargs: Any) -> None:
            events.append((name, kwargs))

        return receiver

    receivers = {
        signals.task_prerun: on("prerun"),
        signals.task_success: on("success"),
        signals.task_failure: on("failure"),
        signals.task_postrun: on("postrun"),
        signals.task_retry: on("retry"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)

    @app.task
    def ok(x: int) -> int:
        return x

    @app.task
    def bad() -> None:
        raise ValueError("x")

    try:
        ok.delay(7)
        bad.delay()
        drain(app)
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert [name for name, _ in events] == [
        "prerun",
        "success",
        "postrun",
        "prerun",
        "failure",
        "postrun",
    ]
    assert events[0][1]["args"] == (7,) and events[1][1]["result"] == 7
    assert isinstance(events[4][1]["exception"], ValueError) and events[4][1]["einfo"]
    assert events[2][1]["state"] == "SUCCESS" and events[5][1]["state"] == "FAILURE"


def test_a_failing_receiver_never_breaks_the_task(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_reporter(**kwargs: Any) -> None:
        raise RuntimeError("reporter is down")

    signals.task_success.connect(broken_reporter)

    @app.task
    def fine() -> int:
        return 1

    try:
        result = fine.delay()
        with caplog.at_level(logging.ERROR, logger="celeriac.signals"):
            drain(app)
    finally:
        signals.task_success.disconnect(broken_reporter)
    assert result.get(timeout=1) == 1
    assert "reporter is down" in caplog.text


def test_signal_sender_filter_and_weak_references() -> None:
    signal = Signal("custom")
    calls: list[Any] = []

    @signal.connect(sender="a")
    def only_a(sender: Any = None, **kwargs: Any) -> None:
        calls.append(sender)

    signal.send(sender="a")
    signal.send(sender="b")
    assert calls == ["a"]

    class Holder:
        def method(self, **kwargs: Any) -> None:
            calls.append("method")

    holder = Holder()
    signal.connect(holder.method)
    del holder  # a weakly connected receiver goes away with its object
    signal.send(sender="c")
    assert calls == ["a"]
