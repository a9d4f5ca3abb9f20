"""Compressed task messages: ``apply_async(compression=...)`` and ``task_compression``
shrink the body on the wire, mark it with Celery's ``compression`` header, and the worker
runs the task as if nothing had happened; a body it cannot decompress is dead-lettered."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.exceptions import EncodeError
from celeriac.messages import Message
from celeriac.messages.compression import names
from celeriac.testing import drain
from tests.conftest import take_messages


@pytest.fixture
def echo(app: Celery) -> Any:
    @app.task
    def echo(text: str) -> str:
        return text

    return echo


def test_a_compressed_call_runs_and_travels_compressed(app: Celery, echo: Any) -> None:
    text = "celeriac " * 2000
    result = echo.apply_async((text,), compression="zlib")
    [(message, _)] = take_messages(app)
    assert message.headers["compression"] == "application/x-gzip"
    assert len(message.body) < len(text) / 10
    assert text in zlib.decompress(message.body).decode()
    app.broker.publish(OutboundMessage("celery", message.encode(), message.id))  # put back
    assert drain(app) == 1
    assert result.get(timeout=1) == text


@pytest.mark.parametrize("method", ["gzip", "bzip2", "lzma", "xz"])
def test_the_setting_compresses_every_call(app: Celery, echo: Any, method: str) -> None:
    app.conf.task_compression = method
    result = echo.delay("hello")
    assert drain(app) == 1
    assert result.get(timeout=1) == "hello"


def test_an_unknown_method_is_refused_when_sending(app: Celery, echo: Any) -> None:
    with pytest.raises(EncodeError, match="compression 'zip' is not available: use one of"):
        echo.apply_async(("x",), compression="zip")
    assert "zlib" in names() and "lzma" in names()


def test_a_body_the_worker_cannot_decompress_is_dead_lettered(app: Celery, echo: Any) -> None:
    task_name = echo.name
    for task_id, method in (("bad-bytes", "application/x-gzip"), ("no-such", "application/x-rar")):
        message = Message({"task": task_name, "id": task_id, "compression": method}, b"not zlib")
        app.broker.publish(OutboundMessage("celery", message.encode(), task_id))
    assert drain(app) == 2
    letters = {letter.message_id: letter for letter in app.broker.dead_letters("celery")}
    assert letters["bad-bytes"].reason == DeadLetterReason.MALFORMED
    assert "not valid application/x-gzip data" in letters["bad-bytes"].detail
    assert "cannot decompress" in letters["no-such"].detail
    after = echo.delay("after")
    assert drain(app) == 1  # the worker carries on
    assert after.get(timeout=1) == "after"
