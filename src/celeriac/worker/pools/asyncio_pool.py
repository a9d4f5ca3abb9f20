"""``asyncio`` pool: ``async def`` tasks run natively on the worker's event loop.

Up to ``concurrency`` coroutines at once; a sync task in the same worker runs in a thread
so it never blocks the loop. Imports the pool seam, ``trace`` and ``execution``.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from celeriac.trace import Outcome, trace_task_async
from celeriac.worker.execution import Job, expire, is_expired
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.threads import ThreadsPool


def is_async_task(task: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(task, "run", None))


class AsyncioPool(Pool):
    name = "asyncio"

    def __init__(self, app: Any, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._threads = ThreadsPool(app, concurrency)
        self._running: set[asyncio.Task[Outcome]] = set()

    async def start(self) -> None:
        await self._threads.start()

    async def run(self, job: Job) -> Outcome:
        if not is_async_task(job.task):
            return await self._threads.run(job)
        if is_expired(job.request):
            return expire(job)
        # Its own asyncio task (and so its own context) per body: cancellable at shutdown.
        body = asyncio.ensure_future(trace_task_async(job.task, job.request))
        self._running.add(body)
        try:
            return await body
        finally:
            self._running.discard(body)

    async def stop(self, *, terminate: bool) -> None:
        if terminate:
            for body in list(self._running):
                body.cancel()
        await self._threads.stop(terminate=terminate)
