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


@pytest.mark.parametrize("url", ["amqp://guest:secret@rabbit//", "amqps://", "pyamqp://"])
def test_celery4s_amqp_result_backend_is_refused_and_rpc_is_named(url: str) -> None:
    message = backend_error(url)
    scheme = url.partition("://")[0]
    assert f"result_backend has scheme {scheme!r}" in message
    assert "the amqp result backend was removed in Celery 5" in message
    assert "result_backend='rpc://'" in message
    assert "result_backend='redis://localhost:6379/1'" in message
    assert "secret" not in message and "\n" not in message


def test_rpc_builds_the_reply_backend_on_the_apps_broker() -> None:
    from celeriac.results.rpc import RpcBackend

    app = Celery("urls", broker="memory://", backend="rpc://", set_as_current=False)
    try:
        assert isinstance(app.backend, RpcBackend)
        assert app.backend.broker is app.broker
    finally:
        app.close()


@pytest.mark.parametrize("url", ["rpc://guest@rabbit//", "rpc://host", "rpc:///x", "rpc://?a=1"])
def test_an_rpc_url_with_a_host_or_options_is_refused(url: str) -> None:
    message = backend_error(url)
    assert "takes no host, path or options" in message
    assert "result_backend='rpc://'" in message and "\n" not in message


def test_an_unknown_result_backend_names_its_scheme_and_the_ones_there_are() -> None:
    message = backend_error("mongodb://user:secret@db:27017/results")
    assert message.startswith("result_backend has scheme 'mongodb'")
    for scheme in ("redis://", "rediss://", "unix://", "sentinel://", "cache+memory://"):
        assert scheme in message
    assert "secret" not in message and "\n" not in message


def test_a_result_backend_without_a_scheme_says_to_write_a_url() -> None:
    assert "no scheme (write a URL" in backend_error("localhost")


def test_an_unknown_broker_names_its_scheme_and_the_brokers_there_are() -> None:
    app = Celery("urls", broker="sqs://key:secret@", set_as_current=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        _ = app.broker
    message = str(caught.value)
    assert message.startswith("broker_url has scheme 'sqs', which no celeriac broker serves")
    for scheme in ("redis://", "amqp://", "memory://"):
        assert scheme in message
    assert "secret" not in message and "\n" not in message
