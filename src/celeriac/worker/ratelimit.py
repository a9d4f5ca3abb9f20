"""Rate limits: ``rate_limit='10/m'`` parsed, and a token bucket per task per worker.

Pure logic, no I/O: the consumer asks ``RateLimits.wait_for(task)`` before it runs a job.
A job over its limit is given back to the broker with a delay rather than held, so it
never takes a slot or prefetch room from other tasks (fair dispatch stays intact).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from celeriac.rates import parse_rate


class TokenBucket:
    """Tokens refill at ``rate`` per second up to ``capacity``; one token per task run."""

    def __init__(
        self, rate: float, capacity: float = 1.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate, self.capacity, self._clock = rate, capacity, clock
        self._tokens = capacity
        self._at = clock()

    def take(self) -> float:
        """Take a token: 0.0 when granted, else the seconds until one will be available."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if self._tokens >= 1 - 1e-9:  # tolerate float rounding at the exact refill moment
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return (1 - self._tokens) / self.rate


class RateLimits:
    """The buckets of one worker, one per rate-limited task; limits can change at runtime."""

    def __init__(self, *, disabled: bool = False) -> None:
        self.disabled = disabled
        self._buckets: dict[str, TokenBucket] = {}
        self._overrides: dict[str, float | None] = {}

    def set(self, task_name: str, rate: str | int | float | None) -> None:
        """Change a task's limit on this worker (the hook remote control will call)."""
        self._overrides[task_name] = parse_rate(rate)
        self._buckets.pop(task_name, None)

    def rate_of(self, task: Any) -> float | None:
        if task.name in self._overrides:
            return self._overrides[task.name]
        return parse_rate(task.resolve("rate_limit"))

    def wait_for(self, task: Any) -> float:
        """0.0 when ``task`` may run now (a token was taken), else seconds to wait."""
        if self.disabled:
            return 0.0
        rate = self.rate_of(task)
        if rate is None:
            return 0.0
        bucket = self._buckets.get(task.name)
        if bucket is None or bucket.rate != rate:
            bucket = self._buckets[task.name] = TokenBucket(rate)
        return bucket.take()
