"""``celery.contrib.testing.mocks``: ``ContextMock``, a ``unittest.mock.Mock`` that also
works as a context manager (``with m as value:`` gives the mock itself), recording its
``__enter__`` and ``__exit__`` calls. Celery's message mocks (``TaskMessage``...) build
Celery's protocol objects for its worker internals and are not offered."""

from __future__ import annotations

from typing import Any
from unittest.mock import Mock

__all__ = ["ContextMock"]


class _WithMock(Mock):
    """A Mock whose class defines the context-manager methods (``with`` looks them up on
    the type, not the instance); each forwards to a recording child mock."""

    def __enter__(self) -> Any:
        return self.__dict__["_mock_children"]["__enter__"]()

    def __exit__(self, *exc_info: Any) -> Any:
        return self.__dict__["_mock_children"]["__exit__"](*exc_info)


def ContextMock(*args: Any, **kwargs: Any) -> Mock:
    """A Mock usable in ``with``: it enters as itself and does not swallow exceptions;
    ``m.__enter__`` and ``m.__exit__`` are mocks that record the calls."""
    mock = _WithMock(*args, **kwargs)
    enter, exit_ = Mock(return_value=mock), Mock(return_value=None)
    mock.attach_mock(enter, "__enter__")
    mock.attach_mock(exit_, "__exit__")
    return mock
