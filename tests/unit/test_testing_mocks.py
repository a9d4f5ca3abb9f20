"""``celery.contrib.testing.mocks.ContextMock``: a Mock that works in a ``with`` block."""

from __future__ import annotations

import pytest

from celeriac.contrib.testing.mocks import ContextMock


def test_context_mock_enters_as_itself_and_records_the_calls() -> None:
    connection = ContextMock(name="connection")
    with connection as conn:
        assert conn is connection
        conn.publish("hello")
    connection.__enter__.assert_called_once_with()
    connection.__exit__.assert_called_once_with(None, None, None)
    connection.publish.assert_called_once_with("hello")


def test_context_mock_lets_exceptions_through() -> None:
    resource = ContextMock()
    with pytest.raises(KeyError), resource:
        raise KeyError("missing")
    [(exc_type, exc, _tb)] = [call.args for call in resource.__exit__.call_args_list]
    assert exc_type is KeyError and isinstance(exc, KeyError)


def test_context_mock_takes_mock_arguments() -> None:
    factory = ContextMock(return_value=42, name="factory")
    with factory as made:
        assert made() == 42
    assert "factory" in repr(factory)
