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
cancellation becomes an exception that trace records is ``_LimitedBody``'s story.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator, Iterator
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome, trace_task_async
from celeriac.worker import endings, timelimits
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

    def __init__(self, app: Any, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._threads = ThreadsPool(app, concurrency)
        self._running: set[asyncio.Task[Any]] = set()

    async def start(self) -> None:
        await self._threads.start()

    async def run(self, job: Job) -> Outcome:
        if not is_async_task(job.task):
            return await self._threads.run(job)
        settled = precheck(job)  # expired, or already succeeded: not run
        if settled is not None:
            return settled
        hard, soft = timelimits.limits_for(job)
        if hard is None and soft is None:
            # In the caller's asyncio task (one per message, so a context of its own): no
            # second task per body. A cold shutdown cancels that task.
            caller = asyncio.current_task()
            assert caller is not None
            self._running.add(caller)
            try:
                return await trace_task_async(job.task, job.request)
            finally:
                self._running.discard(caller)
        # Its own asyncio task: a time limit cancels it, and nothing else.
        body: asyncio.Task[Outcome] = asyncio.ensure_future(_LimitedBody(job, hard, soft).trace())
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


class _LimitedBody:
    """Runs one job's trace with its limits, turning their cancellations into exceptions.

    Trace runs the body inside the asyncio task we cancel, and ``CancelledError`` is not
    an ``Exception``: left alone it would go through trace unrecorded. So trace must
    await, instead of the body's coroutine, a ``guard`` around it that raises
    ``SoftTimeLimitExceeded`` (or ``TimeLimitExceeded``) when a cancellation *we* caused
    comes out of the body; trace records that as the body's failure, with every hook,
    signal and errback. ``trace_task_async`` takes no such wrapper, and the task object
    must stay the one signals and hooks see, so for exactly the synchronous first step of
    trace (it runs through ``task(...)`` without awaiting) the task's ``run`` is an
    instance attribute that wraps the body's coroutine in the guard; ``_resume`` then
    drives the rest of trace in the same asyncio task. Only the loop's thread, once, uses
    the wrapper: any other caller of ``run`` in that instant gets the plain body.

    The clocks start when the body starts, so a cancellation can only land where the body
    awaits, never in trace's own code; they stop when the body ends. A cancellation
    from anyone else (a cold shutdown) stays a cancellation.
    """

    def __init__(self, job: Job, hard: float | None, soft: float | None) -> None:
        self.job, self.hard, self.soft = job, hard, soft
        self.fired: type[BaseException] | None = None  # the limit that cancelled the body
        self.cancels = 0  # cancellations we requested
        self.body: asyncio.Task[Any] | None = None
        self.timers: list[asyncio.TimerHandle] = []

    async def trace(self) -> Outcome:
        traced = trace_task_async(self.job.task, self.job.request)
        with _run_wrapped(self.job.task, self._wrap):
            try:
                pending = traced.send(None)  # trace, up to the body's first suspension
            except StopIteration as done:
                outcome: Outcome = done.value
                return outcome
        if self.body is not None:  # the guard runs the body
            return await _resume(traced, pending)
        return await self._unguarded(traced, pending)

    async def _unguarded(self, traced: Coroutine[Any, Any, Outcome], pending: Any) -> Outcome:
        """The fallback when the body did not start in trace's first step (a task whose own
        ``__call__`` awaits before calling ``run``): the guard is not around the body, so
        the limits time the rest of trace, and a limit's cancellation that comes out of
        trace unrecorded is recorded here (as FAILURE, without trace's hooks and errbacks).
        """
        logger.warning(
            "Task %s[%s]: its body did not start when called, so a time limit is recorded "
            "without the task's failure hooks",
            self.job.task.name, self.job.request.id,
        )  # fmt: skip
        self._start_clocks()
        try:
            return await _resume(traced, pending)
        except asyncio.CancelledError:
            error = self._limit_error()
            if error is None:
                raise
            return endings.failed(self.job, error)
        finally:
            self._stop_clocks()

    def _wrap(self, run: Callable[..., Any]) -> Callable[..., Any]:
        loop_thread, used = threading.get_ident(), False

        @functools.wraps(run)
        def guarded_run(*args: Any, **kwargs: Any) -> Any:
            nonlocal used
            if used or threading.get_ident() != loop_thread:
                return run(*args, **kwargs)
            used = True
            value = run(*args, **kwargs)
            return self._guard(value) if inspect.isawaitable(value) else value

        return guarded_run

    async def _guard(self, body: Awaitable[Any]) -> Any:
        self._start_clocks()
        try:
            value = await body
        except asyncio.CancelledError:
            error = self._limit_error()
            if error is None:
                raise
            raise error from None
        finally:
            self._stop_clocks()
        if self.fired is TimeLimitExceeded:  # it ignored the hard-limit cancellation
            raise TimeLimitExceeded(self.hard)
        return value

    def _limit_error(self) -> BaseException | None:
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
        assert self.hard is not None
        task, request = self.job.task, self.job.request
        logger.error(
            "Task %s[%s] still runs %ss after its hard time limit (%s): it ignored the "
            "cancellation, and a coroutine cannot be force-stopped; it keeps its slot until "
            "it returns (then it fails with TimeLimitExceeded). Run tasks that need a hard "
            "time limit on the prefork pool (-P prefork).",
            task.name, request.id, HARD_LIMIT_GRACE, timelimits.show(self.hard),
        )  # fmt: skip


@contextlib.contextmanager
def _run_wrapped(
    task: Any, wrap: Callable[[Callable[..., Any]], Callable[..., Any]]
) -> Iterator[None]:
    """``task.run`` is ``wrap(task.run)`` inside the block (an instance attribute over
    the class's method), and exactly what it was again after it."""
    own = vars(task)
    had, saved = "run" in own, own.get("run")
    task.run = wrap(task.run)
    try:
        yield
    finally:
        if had:
            task.run = saved
        else:
            del task.run


@types.coroutine
def _resume(coroutine: Coroutine[Any, Any, Outcome], pending: Any) -> Generator[Any, None, Outcome]:
    """Await the rest of ``coroutine``, whose first step already ran and yielded
    ``pending`` (what it waits for), in the calling asyncio task."""
    try:
        yield pending
    except BaseException as exc:  # thrown in while it waited (a cancellation): pass it on
        try:
            pending = coroutine.throw(exc)
        except StopIteration as done:
            outcome: Outcome = done.value
            return outcome
        return (yield from _resume(coroutine, pending))
    outcome = yield from coroutine
    return outcome
