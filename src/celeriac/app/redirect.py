"""What a task prints, sent to the worker's log (``worker_redirect_stdouts``).

App core (imports ``exceptions`` and ``app.logsetup`` only). While a worker runs,
``sys.stdout`` and ``sys.stderr`` are replaced by a ``LoggingProxy`` that logs each
printed line on ``celeriac.redirected`` at ``worker_redirect_stdouts_level``. Prefork
children are forked with the proxy in place, so their prints reach the same handlers.
"""

from __future__ import annotations

import contextlib
import io
import logging
import sys
import threading
from collections.abc import Iterator
from typing import Any

from celeriac.app.logsetup import resolve_level
from celeriac.exceptions import ImproperlyConfigured

#: The logger the redirected lines are logged on (Celery's is ``celery.redirected``).
REDIRECTED_LOGGER = "celeriac.redirected"


class LoggingProxy(io.TextIOBase):
    """A write-only text file whose lines become log records of ``logger`` at ``loglevel``.

    Lines are gathered per thread, so ``print("a", "b")`` (four writes) is one record
    and threads printing at once never mix their lines; ``flush()`` logs an unfinished
    line. A handler that writes to ``sys.stderr`` itself (Python's last-resort handler,
    a ``handleError`` traceback) would write back into the proxy: such nested writes are
    dropped instead of recursing forever.
    """

    def __init__(self, logger: logging.Logger, loglevel: str | int = logging.WARNING) -> None:
        super().__init__()
        self.logger = logger
        self.loglevel = resolve_level(loglevel)
        self._local = threading.local()

    def writable(self) -> bool:
        return True

    def write(self, data: str) -> int:
        """Log each line ``data`` completes (without its newline); keep the rest."""
        if self.closed or not data or getattr(self._local, "active", False):
            return 0
        pending: str = getattr(self._local, "pending", "") + str(data)
        *lines, self._local.pending = pending.split("\n")
        self._log(lines)
        return len(data)

    def flush(self) -> None:
        """Log the unfinished line, if any (after ``close`` too: nothing is lost)."""
        pending = getattr(self._local, "pending", "")
        self._local.pending = ""
        self._log([pending])

    def _log(self, lines: list[str]) -> None:
        self._local.active = True
        try:
            for line in lines:
                if line.strip():
                    self.logger.log(self.loglevel, line)
        finally:
            self._local.active = False


@contextlib.contextmanager
def redirected_stdouts(conf: Any, *, enabled: bool = True) -> Iterator[None]:
    """Inside the block, ``print()`` logs at ``worker_redirect_stdouts_level`` when
    ``worker_redirect_stdouts`` is on (and ``enabled``: off when a ``setup_logging``
    receiver took over logging, as Celery). The real streams are back afterwards."""
    if not (enabled and conf.worker_redirect_stdouts):
        yield
        return
    try:
        level = resolve_level(conf.worker_redirect_stdouts_level)
    except ValueError as exc:
        raise ImproperlyConfigured(f"worker_redirect_stdouts_level: {exc}") from None
    proxy = LoggingProxy(logging.getLogger(REDIRECTED_LOGGER), level)
    saved = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = proxy
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved
        proxy.flush()


__all__ = ["REDIRECTED_LOGGER", "LoggingProxy", "redirected_stdouts"]
