"""Exceptions as data: how a task's exception is stored and how it is shown again.

A stored record names an exception type; celeriac never imports a module because a
record names it (that is how CVE-2021-23727 ran code from a tampered result). Only
built-in exceptions and celeriac's own are rebuilt as themselves; any other type comes
back as a ``RemoteTaskError`` subclass carrying the original names and message.
"""

from __future__ import annotations

import builtins
from typing import Any

from celeriac import exceptions as celeriac_exceptions
from celeriac.exceptions import RemoteTaskError

_TRUSTED_MODULES = {
    "builtins": builtins,
    "celeriac.exceptions": celeriac_exceptions,
}
_remote_types: dict[tuple[str, str], type[RemoteTaskError]] = {}


def _safe_args(args: tuple[Any, ...]) -> list[Any]:
    return [a if isinstance(a, (str, int, float, bool, type(None))) else repr(a) for a in args]


def encode_exception(exc: BaseException) -> dict[str, Any]:
    cls = type(exc)
    if isinstance(exc, RemoteTaskError):  # keep the original names when re-stored
        return {
            "exc_type": exc.exc_type,
            "exc_module": exc.exc_module,
            "exc_message": _safe_args(exc.args),
        }
    # An exception that keeps its message outside args (pydantic's ValidationError) is
    # stored with its text, so the caller still reads what went wrong.
    args = exc.args if exc.args or not str(exc) else (str(exc),)
    return {
        "exc_type": cls.__qualname__,
        "exc_module": cls.__module__,
        "exc_message": _safe_args(args),
    }


def _remote_type(module: str, name: str) -> type[RemoteTaskError]:
    key = (module, name)
    cls = _remote_types.get(key)
    if cls is None:
        cls = type(name, (RemoteTaskError,), {"exc_type": name, "exc_module": module})
        cls.__module__ = module
        _remote_types[key] = cls
    return cls


def decode_exception(data: Any) -> BaseException:
    """Rebuild an exception from stored data without importing anything."""
    if not isinstance(data, dict) or "exc_type" not in data:
        return RemoteTaskError(repr(data))
    name = str(data.get("exc_type"))
    module = str(data.get("exc_module") or "builtins")
    message = data.get("exc_message")
    args = tuple(message) if isinstance(message, (list, tuple)) else (message,)
    trusted = _TRUSTED_MODULES.get(module)
    cls = getattr(trusted, name, None) if trusted is not None else None
    if isinstance(cls, type) and issubclass(cls, BaseException):
        try:
            return cls(*args)
        except Exception:  # an exception class whose __init__ wants other arguments
            pass
    return _remote_type(module, name)(*args)
