"""``threads`` and ``solo`` pools: task bodies in threads, for I/O-bound sync tasks.

A thread cannot be stopped from outside: on a cold shutdown the worker gives the
messages back and exits the process, which ends the threads. ``solo`` is one thread:
tasks run one at a time, off the event loop so lease heartbeats keep going. The threads
and the hand-back of outcomes to the loop are ``pools.job_threads``.

Time limits (``worker.timelimits``): when one passes, its exception is raised inside the
task's thread with ``PyThreadState_SetAsyncExc``: ``SoftTimeLimitExceeded`` at the soft
limit and, as a best effort that is always logged as an error, ``TimeLimitExceeded`` at
the hard one. Such an exception lands at the thread's next Python bytecode: a blocking
call in C (``time.sleep``, a socket read) finishes first, and the task may catch it. Only
the prefork pool can force-stop a task. A job with no limit arms nothing. (CPython
3.11/3.12 quirk, python/cpython#108214, signals included: in a one-line loop that is the
first statement of a ``try``, such an exception escapes that ``try``.)
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.trace import Outcome, trace_task
from celeriac.worker import request as requests
from celeriac.worker import timelimits
from celeriac.worker.execution import Job, precheck, run
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.job_threads import JobThreads

logger = logging.getLogger("celeriac.worker")


class ThreadsPool(Pool):
    name = "threads"

    def __init__(self, app: Any, concurrency: int) -> None:
        super().__init__(app, concurrency)
        self._threads: JobThreads | None = None
        self._retired: list[JobThreads] = []  # replaced by a resize, finishing jobs

    async def start(self) -> None:
        self._threads = self._new_threads(asyncio.get_running_loop())

    def _new_threads(self, loop: asyncio.AbstractEventLoop) -> JobThreads:
        return JobThreads(self.concurrency, f"celeriac-{self.name}", loop)

    def resize(self, concurrency: int) -> None:
        """New jobs go to threads of the new number; the old ones finish the jobs they run
        and end (the consumer never runs more than ``concurrency`` at once)."""
        super().resize(concurrency)
        self.restart()

    def restart(self) -> None:
        """Fresh threads for the next jobs (thread-local state starts anew); the tasks
        run in this process, so what it imported or reloaded reaches them either way."""
        if self._threads is not None:
            self._threads.shutdown(wait=False)
            self._retired.append(self._threads)
            self._threads = self._new_threads(self._threads.loop)

    async def run(self, job: Job) -> Outcome:
        if self._threads is None:
            raise RuntimeError("the pool is not started")
        # A fresh context per task: a task's request never leaks into the next one.
        context = contextvars.Context()
        hard, soft = timelimits.limits_for(job)
        if hard is None and soft is None:
            outcome: Outcome = await self._threads.submit(context.run, run, job)
        else:
            outcome = await self._threads.submit(context.run, run_limited, job, hard, soft)
        return outcome

    async def stop(self, *, terminate: bool) -> None:
        every = [*self._retired, self._threads] if self._threads is not None else []
        self._threads, self._retired = None, []
        for threads in every:
            # Running bodies cannot be interrupted; with terminate the process exits soon.
            threads.shutdown(wait=not terminate, cancel_pending=True)


class SoloPool(ThreadsPool):
    """One task at a time (``-P solo``), for debugging; ``concurrency`` is always 1."""

    name = "solo"

    def __init__(self, app: Any, concurrency: int = 1) -> None:
        super().__init__(app, 1)

    def resize(self, concurrency: int) -> None:
        raise ValueError(
            "the solo pool runs one task at a time and cannot grow or shrink: start the "
            "worker with -P threads (or prefork) -c N to resize it"
        )


# -- time limits in threads -------------------------------------------------------------------
def run_limited(job: Job, hard: float | None, soft: float | None) -> Outcome:
    """``execution.run(job)`` in this thread, with its limits armed around the body only."""
    return precheck(job) or trace_task(job.task, job.request, around_body=_Watch(job, hard, soft))


class _Watch:
    """One job's limits: alarms that raise in the job's thread while (only while) its body
    runs. Trace enters it just around the body, so a limit is the body's failure.

    ``running`` changes under ``lock``, and an exception is only sent under ``lock`` while
    ``running``: after ``stop`` nothing new is sent, and one sent but not raised yet is
    taken back, so it cannot land outside trace, in the next job or in the pool. (What
    stays uncovered: two sends, soft and hard, landing within the same few bytecodes as
    the body ends.)
    """

    def __init__(self, job: Job, hard: float | None, soft: float | None) -> None:
        self.job, self.hard, self.soft = job, hard, soft
        self.lock = threading.Lock()
        self.ident = 0  # the body's thread, known once it starts
        self.running = False
        self.sent = False
        self.alarms: list[_Alarm] = []

    def __enter__(self) -> None:
        try:
            self.arm()
        except timelimits.LIMIT_ERRORS:  # a tiny limit passed already: stop, then fail
            self.stop()
            raise

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.stop()
        except timelimits.LIMIT_ERRORS:
            self.stop()  # again: it landed in the first stop, before that took effect
            raise  # the limit passed before the body was over: the body failed

    def arm(self) -> None:
        with self.lock:
            self.ident = threading.get_ident()
            self.running = True
        if self.soft is not None:
            self.alarms.append(ALARMS.call_later(self.soft, self._on_soft_limit))
        if self.hard is not None:
            self.alarms.append(ALARMS.call_later(self.hard, self._on_hard_limit))

    def stop(self) -> None:
        with self.lock:
            self.running = False
        for alarm in self.alarms:
            ALARMS.cancel(alarm)
        if self.sent:
            _raise_in(self.ident, None)

    def _send(self, exc: type[BaseException]) -> bool:
        """Raise ``exc`` in the job's thread if the body still runs; False if it ended."""
        with self.lock:
            if not self.running:
                return False
            self.sent = _raise_in(self.ident, exc) or self.sent
            return True

    # On the alarm thread:
    def _on_soft_limit(self) -> None:
        if self._send(SoftTimeLimitExceeded):
            assert self.soft is not None
            task, request = self.job.task, self.job.request
            logger.warning(
                "Task %s[%s] soft time limit (%s) exceeded",
                task.name, request.id, timelimits.show(self.soft),
            )  # fmt: skip
            requests.timed_out(self.job, True, self.soft)

    def _on_hard_limit(self) -> None:
        assert self.hard is not None
        if self._send(timelimits.raisable(TimeLimitExceeded, self.hard)):
            task, request = self.job.task, self.job.request
            logger.error(
                "Task %s[%s] hard time limit (%s) exceeded, but a thread cannot be "
                "force-stopped: TimeLimitExceeded was raised in it as a best effort (it "
                "takes effect at the task's next Python bytecode, after any blocking call "
                "returns, and the task may catch it). Run tasks that need a hard time "
                "limit on the prefork pool (-P prefork).",
                task.name, request.id, timelimits.show(self.hard),
            )  # fmt: skip


def _raise_in(ident: int, exc: type[BaseException] | None) -> bool:
    """Have thread ``ident`` raise ``exc`` at its next bytecode; ``None`` takes back one
    sent but not raised yet. True when the thread was found."""
    # Imported when a time limit first passes, not with the pool: ctypes adds about
    # 0.5 MB to every worker, and most never need it.
    import ctypes

    set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc
    what = None if exc is None else ctypes.py_object(exc)  # None: a NULL pointer
    found = int(set_async_exc(ctypes.c_ulong(ident), what))
    if found > 1:  # the C API's contract: more than one thread state means undo it
        set_async_exc(ctypes.c_ulong(ident), None)
    return found == 1


@dataclass(order=True)
class _Alarm:
    when: float
    seq: int
    fn: Callable[[], None] | None = field(compare=False)  # None: cancelled or fired


class _Alarms:
    """Calls functions at ``time.monotonic()`` times on one daemon thread of its own,
    started on first use (so a process whose tasks have no limit never starts it)."""

    COMPACT_AT = 64  # cancelled alarms kept in the heap before it is rebuilt without them

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[_Alarm] = []
        self._cancelled = 0
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[[], None]) -> _Alarm:
        alarm = _Alarm(time.monotonic() + delay, next(self._seq), fn)
        with self._cond:
            heapq.heappush(self._heap, alarm)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="celeriac-time-limits", daemon=True
                )
                self._thread.start()
            elif self._heap[0] is alarm:
                self._cond.notify()  # it is due before what the thread waits for
        return alarm

    def cancel(self, alarm: _Alarm) -> None:
        with self._cond:
            if alarm.fn is None:
                return
            alarm.fn = None
            self._cancelled += 1
            # Long limits would otherwise keep every finished job's alarms until they pass.
            if self._cancelled > self.COMPACT_AT and 2 * self._cancelled > len(self._heap):
                self._heap = [a for a in self._heap if a.fn is not None]
                heapq.heapify(self._heap)
                self._cancelled = 0

    def _serve(self) -> None:
        while True:
            with self._cond:
                fn = self._next_due()
            try:
                fn()
            except Exception:  # an alarm must not end the thread that runs the others
                logger.exception("time limit alarm failed")

    def _next_due(self) -> Callable[[], None]:
        """Wait (holding the condition) for the next alarm due and take it."""
        while True:
            while self._heap and self._heap[0].fn is None:
                heapq.heappop(self._heap)
                self._cancelled -= 1
            if not self._heap:
                self._cond.wait()
                continue
            delay = self._heap[0].when - time.monotonic()
            if delay > 0:
                self._cond.wait(delay)
                continue
            alarm = heapq.heappop(self._heap)
            fn, alarm.fn = alarm.fn, None
            assert fn is not None
            return fn


ALARMS = _Alarms()
# A forked child has no alarm thread (and maybe a lock held by one): it starts afresh.
os.register_at_fork(after_in_child=ALARMS._reset)
