"""Celery 5.5's soft shutdown: before a cold shutdown gives running tasks' messages back,
they get ``worker_soft_shutdown_timeout`` seconds to finish.

Runtime layer (imports ``exceptions``; uses the consumer by its face: ``running``,
``wait_idle``). Off by default
(timeout 0). It ends as soon as nothing runs; an idle worker skips it unless
``worker_enable_soft_shutdown_on_idle``, which waits the whole timeout, as Celery's.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.worker")


@dataclasses.dataclass(frozen=True)
class SoftShutdown:
    timeout: float = 0.0
    on_idle: bool = False

    @classmethod
    def from_conf(cls, conf: Any) -> SoftShutdown:
        timeout = conf.worker_soft_shutdown_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout < 0:
            raise ImproperlyConfigured(
                f"worker_soft_shutdown_timeout must be seconds >= 0 (0: off), not {timeout!r}"
            )
        return cls(float(timeout), bool(conf.worker_enable_soft_shutdown_on_idle))

    def wanted(self, consumer: Any) -> bool:
        """Whether a cold shutdown starts with a soft one now."""
        return self.timeout > 0 and (bool(consumer.running) or self.on_idle)

    async def wait(self, consumer: Any) -> bool:
        """Give running tasks up to ``timeout`` seconds; True if none is left running."""
        logger.warning(
            "soft shutdown: running tasks get %ss to finish before they are given back "
            "(a further signal gives them back now)",
            self.timeout,
        )
        if not consumer.running:  # worker_enable_soft_shutdown_on_idle
            await asyncio.sleep(self.timeout)
            return True
        if await consumer.wait_idle(self.timeout):
            logger.info("soft shutdown: every running task finished")
            return True
        logger.warning("soft shutdown: tasks still running after %ss", self.timeout)
        return False


NO_SOFT_SHUTDOWN = SoftShutdown()

__all__ = ["NO_SOFT_SHUTDOWN", "SoftShutdown"]
