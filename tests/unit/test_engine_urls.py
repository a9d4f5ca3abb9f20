"""Broker and result backend URLs that no engine serves: one line naming the scheme, the
schemes there are and the fix, on first use of ``app.broker`` / ``app.backend``."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured


def backend_error(url: str) -> str:
    app = Celery("urls", broker="memory://", backend=url, set_as_current=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        _ = app.backend
    return str(caught.value)


@pytest.mark.parametrize("url", ["rpc://", "amqp://guest:secret@rabbit//", "pyamqp://"])
def test_an_rpc_or_amqp_result_backend_is_refused_and_redis_is_named(url: str) -> None:
    message = backend_error(url)
    scheme = url.partition("://")[0]
    assert f"result_backend has scheme {scheme!r}" in message
    assert "does not offer the rpc/amqp result backend" in message
    assert "result_backend='redis://localhost:6379/1'" in message
    assert "cache+memory://" in message and "secret" not in message
    assert "\n" not in message


def test_an_unknown_result_backend_names_its_scheme_and_the_ones_there_are() -> None:
    message = backend_error("mongodb://user:secret@db:27017/results")
    assert message.startswith("result_backend has scheme 'mongodb'")
    for scheme in ("redis://", "rediss://", "unix://", "sentinel://", "cache+memory://"):
        assert scheme in message
    assert "secret" not in message and "\n" not in message


def test_a_result_backend_without_a_scheme_says_to_write_a_url() -> None:
    assert "no scheme (write a URL" in backend_error("redis")


def test_an_unknown_broker_names_its_scheme_and_the_brokers_there_are() -> None:
    app = Celery("urls", broker="sqs://key:secret@", set_as_current=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        _ = app.broker
    message = str(caught.value)
    assert message.startswith("broker_url has scheme 'sqs', which no celeriac broker serves")
    for scheme in ("redis://", "amqp://", "memory://"):
        assert scheme in message
    assert "secret" not in message and "\n" not in message
