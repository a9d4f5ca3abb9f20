"""``asyncio`` pool: ``async def`` tasks run natively on the worker's event loop.

Up to ``concurrency`` coroutines at once; a sync task in the same worker runs in a thread
so it never blocks the loop (its time limits are the threads pool's). Imports the pool
seam, ``trace``, ``execution`` and ``timelimits``.

Time limits of ``async def`` tasks: at the soft limit the body's asyncio task is
cancelled, so the body sees ``asyncio.CancelledError`` at the ``await`` it is suspended
in. It may catch it to save partial work; when the cancellation leaves the body, celeriac
records FAILURE with ``SoftTimeLimitExceeded`` (a body that returns instead succeeds, as
a sync task that catches ``SoftTimeLimitExceeded`` does). At the hard limit it is
cancelled again and fails with ``TimeLimitExceeded``, even if it ignores that too and
returns later (which is logged: a coroutine cannot be force-stopped either). How the
cancellation becomes an exception that trace records is ``_Limits``'s story.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome, trace_task_async
from celeriac.worker import request as requests
from celeriac.worker import timelimits
from celeriac.worker.execution import Job, precheck
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.threads import ThreadsPool

logger = logging.getLogger("celeriac.worker")

#: Seconds a body may go on after its hard-limit cancellation before that is logged.
HARD_LIMIT_GRACE = 1.0


def is_async_task(task: Any) -> bool:
    return inspect.iscoroutinefunction(getattr(task, "run", None))


class AsyncioPool(Pool):
    name = "asyncio"
    runs_on_loop = True  # coroutine bodies do (plain functions go to its threads)

    def __init__(self, app: Any, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._threads = ThreadsPool(app, concurrency)
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self._threads.start()

    def resize(self, concurrency: int) -> None:
        """Coroutines are capped by the consumer's slots; sync tasks by the threads."""
        super().resize(concurrency)
        self._threads.resize(concurrency)

    def restart(self) -> None:
        """Sync tasks get fresh threads; coroutines run on the worker's loop, which the
        imported or reloaded modules reached already."""
        self._threads.restart()

    async def run(self, job: Job) -> Outcome:
        if not is_async_task(job.task):
            return await self._threads.run(job)
        settled = precheck(job)  # expired, or already succeeded: not run
        if settled is not None:
            return settled
        hard, soft = timelimits.limits_for(job)
        limits = None if hard is None and soft is None else _Limits(job, hard, soft)
        # In the caller's asyncio task (one per message, so a context of its own): no
        # second task per body. A cold shutdown cancels that task; a limit cancels it only
        # while the body runs.
        caller = asyncio.current_task()
        assert caller is not None
        self._running.add(caller)
        try:
            return await trace_task_async(job.task, job.request, around_body=limits)
        finally:
            self._running.discard(caller)

    async def stop(self, *, terminate: bool) -> None:
        if terminate:
            for body in list(self._running):
                body.cancel()
        await self._threads.stop(terminate=terminate)


class _Limits:
    """One job's limits, which trace enters (``async with``) just around the body.

    The body runs in the asyncio task that awaits trace, and the limits cancel that task.
    ``CancelledError`` is not an ``Exception``: left alone it would go through trace
    unrecorded. So when a cancellation *we* caused comes out of the body, ``__aexit__``
    raises ``SoftTimeLimitExceeded`` (or ``TimeLimitExceeded``) in its place, and trace
    records that as the body's failure, with every hook, signal and errback. A
    cancellation from anyone else (a cold shutdown) stays a cancellation.

    The clocks start as the body starts and stop as it ends; the task runs nothing else
    in between, and a timer can only fire while the task waits, so a cancellation lands
    where the body awaits, never in trace's own code.
    """

    def __init__(self, job: Job, hard: float | None, soft: float | None) -> None:
        self.job, self.hard, self.soft = job, hard, soft
        self.fired: type[BaseException] | None = None  # the limit that cancelled the body
        self.cancels = 0  # cancellations we requested
        self.body: asyncio.Task[Any] | None = None
        self.timers: list[asyncio.TimerHandle] = []

    async def __aenter__(self) -> None:
        self._start_clocks()

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: object
    ) -> None:
        error = self._limit_error() if isinstance(exc, asyncio.CancelledError) else None
        if exc is None and self.fired is TimeLimitExceeded:  # it ignored the hard limit
            error = TimeLimitExceeded(self.hard)
        self._stop_clocks()
        if error is not None:
            _autoretry(self.job.task, error)
            raise error from None

    def _limit_error(self) -> Exception | None:
        """The exception a cancellation out of the body stands for; None when it is not
        (only) ours."""
        if self.fired is None or self.body is None:
            return None
        cancelling = getattr(self.body, "cancelling", None)  # Python 3.11+
        if cancelling is not None and cancelling() > self.cancels:
            return None  # someone else cancelled it too: that one wins
        if self.fired is TimeLimitExceeded:
            return TimeLimitExceeded(self.hard)
        return SoftTimeLimitExceeded()

    def _start_clocks(self) -> None:
        loop = asyncio.get_running_loop()
        self.body = asyncio.current_task()
        if self.soft is not None:
            self.timers.append(loop.call_later(self.soft, self._on_soft_limit))
        if self.hard is not None:
            self.timers.append(loop.call_later(self.hard, self._on_hard_limit))

    def _stop_clocks(self) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()
        uncancel = getattr(self.body, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            for _ in range(self.cancels):  # ours are spent: leave the count as we found it
                uncancel()
        self.cancels = 0

    def _cancel(self, limit: type[BaseException]) -> None:
        assert self.body is not None
        self.fired = limit
        self.cancels += 1
        self.body.cancel()

    def _on_soft_limit(self) -> None:
        assert self.soft is not None
        task, request = self.job.task, self.job.request
        logger.warning(
            "Task %s[%s] soft time limit (%s) exceeded: cancelling it",
            task.name, request.id, timelimits.show(self.soft),
        )  # fmt: skip
        requests.timed_out(self.job, True, self.soft)
        self._cancel(SoftTimeLimitExceeded)

    def _on_hard_limit(self) -> None:
        assert self.hard is not None
        task, request = self.job.task, self.job.request
        logger.error(
            "Task %s[%s] hard time limit (%s) exceeded: cancelling it",
            task.name, request.id, timelimits.show(self.hard),
        )  # fmt: skip
        self._cancel(TimeLimitExceeded)
        loop = asyncio.get_running_loop()
        self.timers.append(loop.call_later(HARD_LIMIT_GRACE, self._on_ignored))

    def _on_ignored(self) -> None:
        """Still running a grace period after the hard limit: cancel again (a cancel can be
        lost on Python < 3.12 when it lands as an ``asyncio.wait_for`` in the body
        finishes, see ``_futures.cancel_and_wait``), and say that a body which ignores
        cancellation keeps its slot."""
        assert self.hard is not None
        task, request = self.job.task, self.job.request
        self._cancel(TimeLimitExceeded)
        logger.error(
            "Task %s[%s] still runs %ss after its hard time limit (%s): cancelled again; "
            "a coroutine that ignores the cancellation cannot be force-stopped, and keeps "
            "its slot until it returns (then it fails with TimeLimitExceeded). Run tasks "
            "that need a hard time limit on the prefork pool (-P prefork).",
            task.name, request.id, HARD_LIMIT_GRACE, timelimits.show(self.hard),
        )  # fmt: skip


def _autoretry(task: Any, error: Exception) -> None:
    """A limit leaves the body as the body's own exceptions do: through the task's
    ``autoretry_for`` rule (``Task.__call__`` applies it to what ``run`` raises, and here
    the error takes shape only after the body's coroutine has ended), as on every pool."""
    if getattr(task, "autoretry_for", ()):
        task._maybe_autoretry(error)  # raises Retry when the rule says so
