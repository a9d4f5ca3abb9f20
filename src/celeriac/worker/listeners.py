"""Task listeners: what the consumer tells observers (events, metrics) about each task.

Runtime layer; imports the worker's job types and ``trace.Outcome`` only. The consumer
calls every listener from its event loop, in the worker's main process, whatever the pool:
a prefork child reports its outcome to the consumer, so children never publish or count.
A listener must be quick and must not block (hand slow work to a thread or a queue); an
error in one is logged and never reaches the task or the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from celeriac.trace import Outcome
    from celeriac.worker.execution import HeldJob

logger = logging.getLogger("celeriac.worker")


class TaskListener(Protocol):
    """One observer of the tasks a worker runs."""

    def task_received(self, job: HeldJob) -> None:
        """The message was read and will run (not revoked, not expired, not postponed)."""

    def task_started(self, job: HeldJob) -> None:
        """A pool slot took it: the body starts now."""

    def task_finished(self, job: HeldJob, outcome: Outcome) -> None:
        """It ended: ``outcome.state`` is SUCCESS, FAILURE, RETRY, REVOKED, REJECTED or
        IGNORED, ``outcome.runtime`` the body's seconds (0 when it did not run)."""


class Listeners:
    """The listeners of one consumer; each call reaches all of them, errors contained."""

    def __init__(self, listeners: Sequence[TaskListener] = ()) -> None:
        self.listeners = list(listeners)

    def add(self, listener: TaskListener) -> None:
        self.listeners.append(listener)

    def received(self, job: HeldJob) -> None:
        for listener in self.listeners:
            try:
                listener.task_received(job)
            except Exception:
                logger.exception("task listener %r failed on received", listener)

    def started(self, job: HeldJob) -> None:
        for listener in self.listeners:
            try:
                listener.task_started(job)
            except Exception:
                logger.exception("task listener %r failed on started", listener)

    def finished(self, job: HeldJob, outcome: Outcome) -> None:
        for listener in self.listeners:
            try:
                listener.task_finished(job, outcome)
            except Exception:
                logger.exception("task listener %r failed on finished", listener)


__all__ = ["Listeners", "TaskListener"]
