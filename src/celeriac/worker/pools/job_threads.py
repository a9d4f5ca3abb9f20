"""``JobThreads``: the threads the ``threads`` pool runs jobs in, and the hand-back of
their outcomes to the worker's event loop.

Made for this one use instead of ``concurrent.futures.ThreadPoolExecutor``: a job is a
tuple on a ``SimpleQueue`` and its outcome goes straight to the asyncio future the loop
awaits. The executor gives every job a ``concurrent.futures.Future`` (a condition
variable, taken three times) and takes its idle semaphore twice, about 5 µs of a
GIL-bound worker's time per job; none of that is needed when the only reader is one
event loop.

Outcomes come back in batches: ``call_soon_threadsafe`` wakes the loop (a write to its
self-pipe, then an epoll round) only when no wake-up is on its way already, so one
wake-up hands back every job that finished meanwhile. Threads start as jobs need them,
up to ``size``, and stay until ``shutdown``. Runtime layer, stdlib only.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

# A job: what to call, with what, and the loop's future for its outcome.
_Job = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any]"]


class JobThreads:
    """Up to ``size`` threads running the jobs ``submit`` queues, on behalf of ``loop``.

    ``submit`` and ``shutdown`` are called on the loop's thread."""

    def __init__(self, size: int, name: str, loop: asyncio.AbstractEventLoop) -> None:
        self.size = size
        self.name = name
        self.loop = loop
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._busy = 0  # jobs submitted and not handed back yet (changed on the loop only)
        self._closed = False
        self._lock = threading.Lock()  # guards the two below, shared with the threads
        self._finished: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        self._waking = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """Run ``fn(*args)`` in one of the threads; a future of the loop with its outcome."""
        if self._closed:
            raise RuntimeError("cannot run a job: these threads were shut down")
        waiter = self.loop.create_future()
        self._busy += 1
        if self._busy > len(self._threads) and len(self._threads) < self.size:
            self._start_thread()  # every thread has a job already: one more
        self._jobs.put((fn, args, waiter))
        return waiter

    def shutdown(self, *, wait: bool, cancel_pending: bool = False) -> None:
        """No more jobs; the threads end once the queued jobs ran, or, with
        ``cancel_pending``, once their running job did (the queued ones are cancelled).
        ``wait``: return only when every thread has ended."""
        self._closed = True
        if cancel_pending:
            with contextlib.suppress(queue.Empty):
                while True:
                    job = self._jobs.get_nowait()
                    if job is not None:
                        self._busy -= 1
                        job[2].cancel()
        for _ in self._threads:
            self._jobs.put(None)  # each thread takes one and ends
        if wait:
            for thread in self._threads:
                thread.join()

    def _start_thread(self) -> None:
        thread = threading.Thread(
            target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True
        )
        thread.start()
        self._threads.append(thread)

    # -- in the threads ---------------------------------------------------------------------
    def _work(self) -> None:
        jobs = self._jobs
        while (job := jobs.get()) is not None:
            fn, args, waiter = job
            del job  # (the arguments are not kept alive while the thread waits)
            try:
                result, error = fn(*args), None
            except BaseException as exc:  # the loop's waiter gets it, as a future would
                result, error = None, exc
            del fn, args
            self._finish(waiter, result, error)
            del waiter, result, error

    def _finish(
        self, waiter: asyncio.Future[Any], result: Any, error: BaseException | None
    ) -> None:
        with self._lock:
            self._finished.append((waiter, result, error))
            if self._waking:
                return
            self._waking = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(self._hand_back)

    # -- on the loop ------------------------------------------------------------------------
    def _hand_back(self) -> None:
        with self._lock:
            finished, self._finished = self._finished, []
            self._waking = False
        self._busy -= len(finished)
        for waiter, result, error in finished:
            if waiter.done():  # cancelled meanwhile (a cold shutdown): left alone
                continue
            if error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(result)
