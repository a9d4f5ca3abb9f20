"""``Autoscaler``: grows the pool while received tasks wait for a slot and shrinks it once
the worker has been idle for ``keepalive`` seconds (``--autoscale=MAX,MIN``, Celery's).

Runtime layer: the stdlib and ``_futures``; the worker hands it its pool's size and a
resize function, and it listens to the consumer's task reports (a ``TaskListener``) for
the last receipt.
It runs on the worker's event loop: a check each second and one per task received.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac._futures import cancel_and_wait

if TYPE_CHECKING:
    from celeriac.trace import Outcome
    from celeriac.worker.execution import HeldJob

logger = logging.getLogger("celeriac.worker.autoscale")

#: Seconds without a new task (or a scale-up) before the pool shrinks: Celery's default.
KEEPALIVE = 30.0
#: Seconds between two checks besides the one each received task triggers.
TICK = 1.0


def keepalive_from_environment() -> float:
    """``AUTOSCALE_KEEPALIVE`` in the environment, as Celery reads it; else 30 seconds."""
    text = os.environ.get("AUTOSCALE_KEEPALIVE")
    if not text:
        return KEEPALIVE
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"AUTOSCALE_KEEPALIVE must be a number of seconds above 0, not {text!r}")
    return value


def parse_autoscale(value: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"10,3"`` -> ``(10, 3)``; ``"10"`` -> ``(10, 0)`` (Celery's reading), checked."""
    if isinstance(value, str):
        high, _, low = value.partition(",")
        try:
            pair = (int(high), int(low) if low.strip() else 0)
        except ValueError:
            raise ValueError(
                f"autoscale takes MAX,MIN (whole numbers, e.g. --autoscale=10,3), not {value!r}"
            ) from None
    else:
        pair = (int(value[0]), int(value[1]))
    return check_range(*pair)


def check_range(high: int, low: int) -> tuple[int, int]:
    if high < 1 or low < 0 or low > high:
        raise ValueError(f"autoscale needs 1 <= MAX and 0 <= MIN <= MAX, not max={high} min={low}")
    return high, low


class Autoscaler:
    """Keeps the pool between ``min_concurrency`` and ``max_concurrency`` processes.

    ``size()`` is the pool's size now, ``reserved()`` the tasks this worker holds (running
    or waiting for a slot: Celery's ``qty``), ``resize(n)`` sets the pool's size. The pool
    never goes below one process: ``MIN`` 0 keeps one (a pool of none could not start the
    task that should make it grow again without a delay).
    """

    def __init__(
        self,
        size: Callable[[], int],
        reserved: Callable[[], int],
        resize: Callable[[int], None],
        max_concurrency: int,
        min_concurrency: int = 0,
        keepalive: float = KEEPALIVE,
    ) -> None:
        if keepalive <= 0:
            raise ValueError("the autoscaler's keepalive must be above 0: it cannot shrink at once")
        self.max_concurrency, self.min_concurrency = check_range(max_concurrency, min_concurrency)
        self.keepalive = keepalive
        self._size, self._reserved, self._resize = size, reserved, resize
        self._last_scale_up: float | None = None
        self._last_task_received: float | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._stopped = False  # the worker is stopping: the pool is no longer resized

    @property
    def floor(self) -> int:
        return max(1, self.min_concurrency)

    # -- running ---------------------------------------------------------------------------
    def start(self) -> None:
        """Check every ``TICK`` seconds from now on (on the running loop)."""
        if self._ticker is None:
            self._ticker = asyncio.create_task(self._tick(), name="celeriac-autoscaler")

    async def stop(self) -> None:
        self._stopped = True
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            with contextlib.suppress(Exception):  # (its errors were logged as they came)
                await cancel_and_wait(ticker)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self.maybe_scale()

    def maybe_scale(self) -> bool:
        """Grow to the tasks held (up to max); shrink to them (down to min) once idle for
        ``keepalive``. True when the size changed."""
        if self._stopped:
            return False
        try:
            return self._maybe_scale()
        except Exception:  # the worker outlives a failed resize; the next tick tries again
            logger.exception("autoscaler: resizing the pool failed")
            return False

    def _maybe_scale(self) -> bool:
        procs, qty = self._size(), self._reserved()
        wanted = min(qty, self.max_concurrency)
        if wanted > procs:
            self._last_scale_up = time.monotonic()
            logger.info("Scaling up %s processes.", wanted - procs)
            self._resize(wanted)
            return True
        wanted = max(qty, self.floor)
        if wanted < procs and self._idle_long_enough():
            logger.info("Scaling down %s processes.", procs - wanted)
            self._resize(wanted)
            return True
        return False

    def _idle_long_enough(self) -> bool:
        """No task received and no scale-up within ``keepalive`` (Celery's rule: before
        either happened once, the pool keeps its size)."""
        marks = [m for m in (self._last_scale_up, self._last_task_received) if m is not None]
        return bool(marks) and time.monotonic() - max(marks) > self.keepalive

    # -- remote control --------------------------------------------------------------------
    def update(self, max: int | None = None, min: int | None = None) -> tuple[int, int]:
        """New bounds (``control autoscale``); the pool is brought inside them at once."""
        high = self.max_concurrency if max is None else int(max)
        low = self.min_concurrency if min is None else int(min)
        self.max_concurrency, self.min_concurrency = check_range(high, low)
        procs = self._size()
        if procs > self.max_concurrency:
            logger.info("Scaling down %s processes.", procs - self.max_concurrency)
            self._resize(self.max_concurrency)
        elif procs < self.floor:
            logger.info("Scaling up %s processes.", self.floor - procs)
            self._resize(self.floor)
        return self.max_concurrency, self.min_concurrency

    def info(self) -> dict[str, Any]:
        """``inspect stats``' ``autoscaler`` entry, Celery's keys."""
        return {
            "max": self.max_concurrency,
            "min": self.min_concurrency,
            "current": self._size(),
            "qty": self._reserved(),
        }

    # -- the consumer's task reports (a TaskListener) -------------------------------------
    def task_received(self, job: HeldJob) -> None:
        self._last_task_received = time.monotonic()
        self.maybe_scale()

    def task_started(self, job: HeldJob) -> None:
        return None

    def task_finished(self, job: HeldJob, outcome: Outcome) -> None:
        return None


__all__ = ["KEEPALIVE", "Autoscaler", "keepalive_from_environment", "parse_autoscale"]
