"""The ``Pool`` seam: runs one job at a time per slot and reports its ``Outcome``.

The consumer (on the worker's event loop) hands a pool at most ``concurrency`` jobs at
once and applies each outcome to the broker itself; a pool never touches a delivery's
ack. Imports ``worker.execution`` and leaves only.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Any

from celeriac.trace import Outcome
from celeriac.worker.execution import HeldJob


class Pool(ABC):
    """A place to run task bodies: threads, child processes, or the event loop itself."""

    #: The ``-P`` name.
    name: str = ""
    #: Whether its jobs run on the consumer's event loop (their bodies start as soon as
    #: the loop gets to them, with no hand-off to a thread or process).
    runs_on_loop: bool = False

    def __init__(self, app: Any, concurrency: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.app = app
        self.concurrency = concurrency

    async def start(self) -> None:
        """Get ready to run jobs (start threads or child processes)."""
        return None

    @abstractmethod
    async def run(self, job: HeldJob) -> Outcome:
        """Run ``job`` and return its outcome; never more than ``concurrency`` at once.

        Raises ``celeriac.exceptions.WorkerLostError`` when the process running it died:
        the consumer then redelivers or dead-letters the message.
        """

    async def stop(self, *, terminate: bool) -> None:
        """Release the pool. ``terminate=True`` (cold shutdown) stops running jobs now
        where the pool can (child processes are killed); threads cannot be stopped."""
        return None

    def terminate_job(self, task_id: str, signum: int) -> bool:
        """Revoke with terminate: stop the running job of ``task_id``; False if this pool
        cannot (threads cannot be killed) or does not run it."""
        return False

    def resize(self, concurrency: int) -> None:
        """Run up to ``concurrency`` jobs at once from now on (``pool_grow``/``pool_shrink``):
        growing starts what is needed now; shrinking lets running jobs finish."""
        if concurrency < 1:
            raise ValueError(f"a pool needs at least 1 process or thread, not {concurrency}")
        self.concurrency = concurrency

    def restart(self) -> None:
        """``pool_restart``: from now on, jobs run in fresh processes or threads that see
        the modules the worker imported or reloaded just before; running jobs finish."""
        return None

    def job_pid(self, task_id: str) -> int | None:
        """The process running ``task_id`` (``inspect active``'s ``worker_pid``)."""
        return os.getpid()

    def kill_now(self) -> None:
        """Immediate stop (SIGQUIT): kill child processes at once; nothing else to do."""
        return None

    def info(self) -> dict[str, Any]:
        """Facts for the banner and ``inspect stats``."""
        return {"pool": self.name, "concurrency": self.concurrency}
