"""``celery.contrib.testing.worker.start_worker``: a real worker in a thread for a test,
with Celery's arguments, checked with a ``celery.ping`` round trip before the test runs
(the worker is a ``TestWorkController``);
``setup_app_for_worker``: the app made current and default, with worker logging.

The worker is celeriac's own test worker (``celeriac.testing.start_worker``); Celery's
``loglevel`` and ``logfile`` are taken for its signature and leave logging to the test
runner, as celeriac's test workers always do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from celeriac.app.logsetup import setup_logging
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing.worker import start_worker as _start_worker
from celeriac.worker.worker import Worker

__all__ = ["TestWorkController", "setup_app_for_worker", "start_worker"]

PING = "celery.ping"  # registered by importing celeriac.contrib.testing.tasks


class TestWorkController(Worker):
    """The worker ``start_worker`` runs, as Celery's: celeriac's ``Worker`` (its
    arguments) with ``ensure_started()``, which waits until it consumes."""

    __test__ = False  # a worker, not a test class for pytest to collect

    def ensure_started(self, timeout: float | None = None) -> None:
        """Return once the worker consumes; ``RuntimeError`` after ``timeout`` seconds."""
        if not self.ready.wait(timeout):
            raise RuntimeError(f"the worker did not start within {timeout}s")


@contextlib.contextmanager
def start_worker(
    app: Any,
    concurrency: int = 1,
    pool: str = "solo",
    loglevel: str | int | None = None,
    logfile: str | None = None,
    perform_ping_check: bool = True,
    ping_task_timeout: float = 10.0,
    shutdown_timeout: float = 10.0,
    **kwargs: Any,
) -> Iterator[Worker]:
    """Run a worker for ``app`` while the block runs; with ``perform_ping_check``, first
    make sure it answers ``celery.ping`` (import ``celeriac.contrib.testing.tasks``, or
    pass ``perform_ping_check=False``)."""
    if perform_ping_check and PING not in app.tasks:
        raise ImproperlyConfigured(
            "start_worker(perform_ping_check=True) needs the celery.ping task: import "
            "celeriac.contrib.testing.tasks before creating the worker, or pass "
            "perform_ping_check=False"
        )
    kwargs.setdefault("WorkController", TestWorkController)
    with _start_worker(
        app,
        pool=pool,
        concurrency=concurrency,
        shutdown_timeout=shutdown_timeout,
        **kwargs,
    ) as worker:
        if perform_ping_check:
            pong = app.tasks[PING].delay().get(timeout=ping_task_timeout)
            if pong != "pong":
                raise RuntimeError(f"the test worker answered celery.ping with {pong!r}")
        yield worker


def setup_app_for_worker(app: Any, loglevel: str | int, logfile: str | None) -> None:
    """Ready ``app`` for a worker embedded in this process, as Celery's helper does: the
    app finalized, made current and default, and logging set up as ``celeriac worker
    -l LEVEL -f FILE`` sets it (the ``setup_logging`` signals included)."""
    app.finalize()
    app.set_current()
    app.set_default()
    setup_logging(loglevel, logfile, app)
