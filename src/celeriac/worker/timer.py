"""``worker.timer``: functions called later or every few seconds, in a thread of their own.

Runtime layer (imports nothing from celeriac). It is what a user bootstep schedules on,
as with Celery's worker timer: ``worker.timer.call_repeatedly(1.0, touch, (path,))``.
The thread starts with the first entry and stops with the worker; an entry that raises
is logged, and a repeating one keeps its schedule.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

logger = logging.getLogger("celeriac.worker.timer")


class Entry:
    """One scheduled call; ``cancel()`` it to drop it (and its repeats)."""

    def __init__(
        self, fun: Callable[..., Any], args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        self.fun, self.args, self.kwargs = fun, tuple(args), dict(kwargs or {})
        self.canceled = False

    def __call__(self) -> Any:
        return self.fun(*self.args, **self.kwargs)

    def cancel(self) -> None:
        self.canceled = True

    @property
    def cancelled(self) -> bool:
        return self.canceled


class Timer:
    """Celery's worker timer: ``call_after``, ``call_at``, ``call_repeatedly``."""

    def __init__(self, name: str = "celeriac-timer") -> None:
        self.name = name
        self._queue: list[tuple[float, int, int, Entry, float | None]] = []
        self._order = itertools.count()  # equal times and priorities: first in, first out
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def call_after(
        self, secs: float, fun: Callable[..., Any], args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None, priority: int = 0,
    ) -> Entry:  # fmt: skip
        """Call ``fun(*args, **kwargs)`` once, ``secs`` seconds from now."""
        return self._enter(Entry(fun, args, kwargs), time.monotonic() + secs, priority, None)

    def call_at(
        self, eta: datetime | float, fun: Callable[..., Any], args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None, priority: int = 0,
    ) -> Entry:  # fmt: skip
        """Call it once at ``eta`` (a datetime, or a ``time.time()`` timestamp)."""
        stamp = eta.timestamp() if isinstance(eta, datetime) else float(eta)
        return self.call_after(max(0.0, stamp - time.time()), fun, args, kwargs, priority)

    def call_repeatedly(
        self, secs: float, fun: Callable[..., Any], args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None, priority: int = 0,
    ) -> Entry:  # fmt: skip
        """Call it every ``secs`` seconds, the first time ``secs`` from now."""
        if secs <= 0:
            raise ValueError(f"call_repeatedly needs an interval above 0 seconds, not {secs!r}")
        return self._enter(Entry(fun, args, kwargs), time.monotonic() + secs, priority, secs)

    def cancel(self, tref: Entry) -> None:
        tref.cancel()

    def clear(self) -> None:
        with self._wake:
            self._queue.clear()

    @property
    def queue(self) -> list[Entry]:
        """The entries waiting, soonest first."""
        with self._wake:
            return [item[3] for item in sorted(self._queue) if not item[3].canceled]

    def __len__(self) -> int:
        return len(self.queue)

    def stop(self) -> None:
        """No more calls; waits for one under way (unless called from one)."""
        with self._wake:
            self._stopped = True
            self._wake.notify()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _enter(self, entry: Entry, when: float, priority: int, every: float | None) -> Entry:
        with self._wake:
            if self._stopped:
                raise RuntimeError("the worker's timer has stopped: nothing more can run on it")
            heapq.heappush(self._queue, (when, priority, next(self._order), entry, every))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._wake.notify()
        return entry

    def _run(self) -> None:
        while True:
            with self._wake:
                due = self._next_due()
                if due is None:
                    return
            _when, priority, _n, entry, every = due
            started = time.monotonic()  # the next run is ``every`` after this one began
            try:
                entry()
            except Exception:
                logger.exception("error in timer entry %r", entry.fun)
            if every is not None and not entry.canceled:
                with self._wake:
                    if not self._stopped:
                        item = (started + every, priority, next(self._order), entry, every)
                        heapq.heappush(self._queue, item)

    def _next_due(self) -> tuple[float, int, int, Entry, float | None] | None:
        """The next entry to call, waiting for it (the lock held); None once stopped."""
        while not self._stopped:
            if self._queue and self._queue[0][3].canceled:
                heapq.heappop(self._queue)
                continue
            wait = self._queue[0][0] - time.monotonic() if self._queue else None
            if wait is not None and wait <= 0:
                return heapq.heappop(self._queue)
            self._wake.wait(wait)
        return None


__all__ = ["Entry", "Timer"]
