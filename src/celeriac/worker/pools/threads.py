"""``threads`` and ``solo`` pools: task bodies in threads, for I/O-bound sync tasks.

A thread cannot be stopped from outside: on a cold shutdown the worker gives the
messages back and exits the process, which ends the threads. ``solo`` is one thread:
tasks run one at a time, off the event loop so lease heartbeats keep going.
"""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from celeriac.trace import Outcome
from celeriac.worker.execution import Job, run
from celeriac.worker.pools.base import Pool


class ThreadsPool(Pool):
    name = "threads"

    def __init__(self, app: Any, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self.concurrency, thread_name_prefix=f"celeriac-{self.name}"
        )

    async def run(self, job: Job) -> Outcome:
        if self._executor is None:
            raise RuntimeError("the pool is not started")
        loop = asyncio.get_running_loop()
        # A fresh context per task: a task's request never leaks into the next one.
        context = contextvars.Context()
        return await loop.run_in_executor(self._executor, context.run, run, job)

    async def stop(self, *, terminate: bool) -> None:
        if self._executor is not None:
            # Running bodies cannot be interrupted; with terminate the process exits soon.
            self._executor.shutdown(wait=not terminate, cancel_futures=True)
            self._executor = None


class SoloPool(ThreadsPool):
    """One task at a time (``-P solo``), for debugging; ``concurrency`` is always 1."""

    name = "solo"

    def __init__(self, app: Any, concurrency: int = 1) -> None:
        super().__init__(app, 1)
