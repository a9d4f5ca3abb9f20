"""``ControlState``: what a worker shows and lets remote control change, as the commands
see it (the ``state`` argument of every command, Celery's ``state``).

Pure logic: a protocol only. The worker implements it (``celeriac.worker.control``), so
the commands never import the worker and the worker needs no branch per command.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class ControlState(Protocol):
    """One worker, for its commands. ``app``, ``hostname`` and ``consumer`` are there for
    custom commands, as in Celery."""

    app: Any
    hostname: str

    @property
    def consumer(self) -> Any:
        """The worker's consumer (None before it starts)."""

    def active(self) -> list[dict[str, Any]]:
        """The tasks running now, each as Celery's request info."""

    def reserved(self) -> list[dict[str, Any]]:
        """The tasks received and waiting for a free slot."""

    def revoked(self) -> list[str]:
        """The revoked task ids in force."""

    async def revoke(self, task_ids: Sequence[str], terminate: bool, signal: str) -> None:
        """Record the ids as revoked (cluster-wide); with ``terminate``, also stop those
        running here (only here: the command reached this worker)."""

    def running_ids(self, task_ids: Sequence[str]) -> list[str]:
        """Which of ``task_ids`` run here now (or were stopped here by a revoke just now)."""

    def stats(self) -> dict[str, Any]:
        """Celery's ``stats`` reply for this worker."""

    @property
    def autoscaling(self) -> bool:
        """True when the worker runs an autoscaler (``--autoscale``)."""

    def autoscale(self, max: int | None, min: int | None) -> tuple[int, int]:
        """New autoscale bounds (None keeps one); the bounds now. Raises ``ValueError``
        when the worker does not autoscale."""

    def memsample(self) -> str:
        """Record the worker process's resident memory now; it, in human units."""

    def memdump(self, samples: int) -> str:
        """Celery's report of the recorded samples (at most ``samples`` of them) and the
        resident memory after a garbage collection; forgets the samples."""

    def resize_pool(self, delta: int) -> int:
        """Grow (``delta > 0``) or shrink the pool; its new size."""

    def restart_pool(self, modules: Sequence[str] | None, reload: bool) -> None:
        """Import (or, with ``reload``, reload) ``modules`` and replace the pool's
        processes or threads (``pool_restart``)."""

    def set_rate_limit(self, task_name: str, rate: str | float | None) -> None:
        """This worker's rate limit for a task (None: no limit)."""

    def queues(self) -> list[str]:
        """The queues consumed now."""

    def add_queue(self, queue: str) -> bool:
        """Start consuming ``queue``; False when it was consumed already."""

    def cancel_queue(self, queue: str) -> bool:
        """Stop consuming ``queue``; False when it was not consumed."""

    def set_task_events(self, enabled: bool) -> bool:
        """Turn task events on or off; False when they already were."""

    def heartbeat(self) -> bool:
        """Send a worker heartbeat event now; False when this worker sends no events."""

    def shutdown(self) -> None:
        """Stop the worker, warm (as a SIGTERM would)."""
