"""``celery.contrib.testing.app``: ``TestApp``, an app on the in-process broker and result
store (with ``UnitLogging`` unless ``enable_logging``), ``setup_default_app``, which
makes an app (or the trap) current for a block, and ``set_trap``, which puts the trap in
place for a block."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from celeriac import _context
from celeriac.app.base import Celeriac
from celeriac.app.log import Logging
from celeriac.testing.plugin import TEST_DEFAULTS, Trap

__all__ = ["TestApp", "Trap", "UnitLogging", "set_trap", "setup_default_app"]


class UnitLogging(Logging):
    """Celery's logging for test apps: already set up, so a test app's ``app.log.setup()``
    leaves the process's logging (and pytest's capture) alone, without marking logging
    set up for any other app."""

    @property
    def already_setup(self) -> bool:
        return True

    @already_setup.setter
    def already_setup(self, done: bool) -> None:
        pass  # stays set up


def TestApp(
    name: str | None = None,
    config: dict[str, Any] | None = None,
    enable_logging: bool = False,
    set_as_current: bool = False,
    backend: str | None = None,
    broker: str | None = None,
    **kwargs: Any,
) -> Celeriac:
    """An app for tests: ``memory://`` and ``cache+memory://`` unless told otherwise."""
    settings = {**TEST_DEFAULTS, **(config or {})}
    if broker is not None:
        settings["broker_url"] = broker
    if backend is not None:
        settings["result_backend"] = backend
    kwargs.setdefault("log", None if enable_logging else UnitLogging)
    return Celeriac(name or "celeriac.tests", set_as_current=set_as_current, **settings, **kwargs)


@contextlib.contextmanager
def set_trap(app: Celeriac) -> Iterator[None]:
    """While the block runs, any use of the current (or default) app raises
    ``RuntimeError``: code that should use ``app`` but reaches for ``current_app`` is
    found. What was current before is restored after."""
    previous = _context._current_app
    _context.set_current_app(Trap())
    try:
        yield
    finally:
        _context.set_current_app(previous)


@contextlib.contextmanager
def setup_default_app(app: Celeriac, use_trap: bool = False) -> Iterator[None]:
    """Make ``app`` current while the block runs (or the trap, which fails any use of the
    current app, as ``set_trap``), then restore whatever was current before."""
    previous = _context._current_app
    _context.set_current_app(app)
    try:
        if use_trap:
            with set_trap(app):
                yield
        else:
            yield
    finally:
        _context.set_current_app(previous)
