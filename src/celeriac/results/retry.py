"""Retrying result store calls that failed on a lost connection (Celery's
``result_backend_always_retry`` family), with capped, fully jittered exponential backoff.

Imports leaves only. ``ResultBackend`` runs each engine call it may safely repeat through
``StoreRetry.call``; the engines know nothing of it. Only ``BackendConnectionError`` (the
store could not be reached) is retried: any other error is an answer, not an outage.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celeriac.exceptions import BackendConnectionError, ImproperlyConfigured

logger = logging.getLogger("celeriac.results")

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class StoreRetry:
    """The policy: off unless ``always``; ``max_retries`` (``inf``: no limit) repeats,
    the n-th after a random pause of up to ``min(max_sleep_ms, base_sleep_ms * 2**n)``."""

    always: bool = False
    max_retries: float = math.inf
    base_sleep_ms: float = 10
    max_sleep_ms: float = 10_000

    def __post_init__(self) -> None:
        for name in ("max_retries", "base_sleep_ms", "max_sleep_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                setting = {
                    "max_retries": "result_backend_max_retries",
                    "base_sleep_ms": "result_backend_base_sleep_between_retries_ms",
                    "max_sleep_ms": "result_backend_max_sleep_between_retries_ms",
                }[name]
                raise ImproperlyConfigured(f"{setting} must be a number >= 0, not {value!r}")

    @classmethod
    def from_conf(cls, conf: Any) -> StoreRetry:
        """The policy the app's settings describe (None for a limit means no limit)."""
        limit = conf.result_backend_max_retries
        return cls(
            always=bool(conf.result_backend_always_retry),
            max_retries=math.inf if limit is None else limit,
            base_sleep_ms=conf.result_backend_base_sleep_between_retries_ms,
            max_sleep_ms=conf.result_backend_max_sleep_between_retries_ms,
        )

    def pause(self, retries: int) -> float:
        """Seconds to wait before retry number ``retries`` (1, 2, ...)."""
        ceiling = min(self.max_sleep_ms, self.base_sleep_ms * 2.0**retries)
        return random.uniform(0, ceiling) / 1000

    def call(self, operation: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)``, repeated after a pause while it raises
        ``BackendConnectionError`` and retries are left; the last error is raised."""
        retries = 0
        while True:
            try:
                return fn(*args, **kwargs)
            except BackendConnectionError as exc:
                if not self.always or retries >= self.max_retries:
                    raise
                retries += 1
                pause = self.pause(retries)
                left = self.max_retries - retries
                logger.warning(
                    "result store %s failed (%s); retry %d in %.3fs, %s more allowed",
                    operation, exc, retries, pause, "unlimited" if math.isinf(left) else int(left),
                )  # fmt: skip
                time.sleep(pause)  # the backoff itself: nothing to wait for but time


NO_RETRY = StoreRetry()

__all__ = ["NO_RETRY", "StoreRetry"]
