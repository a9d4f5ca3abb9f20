"""The I/O thread of one AMQP broker: its own event loop, where every AMQP call runs.

The sync face (a Django view's ``.delay()``) hands a coroutine to this loop with
``run_coroutine_threadsafe`` and waits for its result; the async face (the worker's loop,
any other loop) awaits the same future wrapped for its own loop. So one connection serves
every thread and loop of a process, no call creates an event loop, and AMQP heartbeats and
lease timers keep running while the caller's loop is busy. A forked child starts its own
thread on first use. Imports only the stdlib (and `celeriac._futures`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

from celeriac._futures import copy_outcome

T = TypeVar("T")
_AFTER_FORK: weakref.WeakSet[IOThread] = weakref.WeakSet()


class IOThread:
    """A daemon thread running one event loop, started on first use; or, adopted, the
    loop of a caller that never blocks it (a worker whose tasks run in threads or child
    processes), which saves two thread hand-offs per call."""

    def __init__(self, name: str, on_fork: Callable[[], None] | None = None) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._adopted = False  # serving from a caller's loop, in the caller's thread
        self._on_fork = on_fork
        _AFTER_FORK.add(self)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(
                    target=self._run, args=(loop, started), name=self.name, daemon=True
                )
                thread.start()
                started.wait()
                self._loop, self._thread, self._adopted = loop, thread, False
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(started.set)
        try:
            loop.run_forever()
        finally:
            loop.close()

    def in_thread(self) -> bool:
        loop = self._loop
        return (
            self._thread is threading.current_thread() and loop is not None and not loop.is_closed()
        )

    def adopt(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Serve from ``loop``, the running loop of the calling thread, instead of a thread
        of our own; False when our thread has started already (its connection stays)."""
        with self._lock:
            if self._loop is not None and not self._loop.is_closed():
                return False
            self._loop, self._thread, self._adopted = loop, threading.current_thread(), True
            return True

    @property
    def adopted(self) -> bool:
        return self._adopted

    def release(self) -> None:
        """Stop serving from an adopted loop: the next call starts a thread of our own."""
        with self._lock:
            if self._adopted:
                self._loop = self._thread = None
                self._adopted = False

    def submit(self, work: Coroutine[Any, Any, T]) -> Future[T]:
        if self.in_thread():
            work.close()
            raise RuntimeError(
                "a blocking AMQP call was made on the broker's own I/O thread (in a threads, "
                "prefork or solo worker, the worker's event loop): it would wait for itself. "
                "Await the broker's async method, or call it from another thread "
                "(asyncio.to_thread)"
            )
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the I/O loop and wait for it (the sync face)."""
        return self.submit(work).result()

    async def run_async(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` on the I/O loop and await it from the caller's loop.

        One wake-up each way, with an asyncio future on each side: about a third less CPU
        per call than wrapping ``run_coroutine_threadsafe``'s future, which a worker pays
        several times per task. Cancelling the caller cancels the work. From the I/O loop
        itself (an adopted loop), ``work`` is simply awaited."""
        if self.in_thread():
            return await work
        caller = asyncio.get_running_loop()
        answer: asyncio.Future[T] = caller.create_future()
        running: list[asyncio.Task[T]] = []

        def start() -> None:  # on the I/O loop
            task = asyncio.get_running_loop().create_task(work)
            running.append(task)
            task.add_done_callback(finished)

        def finished(task: asyncio.Task[T]) -> None:  # on the I/O loop
            if not task.cancelled():
                task.exception()  # retrieved here: the caller's loop may be gone
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                caller.call_soon_threadsafe(copy_outcome, task, answer)

        io_loop = self.loop
        io_loop.call_soon_threadsafe(start)
        try:
            return await answer
        except asyncio.CancelledError:
            # Runs after ``start`` (the loop keeps the order of its callbacks).
            with contextlib.suppress(RuntimeError):
                io_loop.call_soon_threadsafe(lambda: [task.cancel() for task in running])
            raise

    def stop(self, shutdown: Coroutine[Any, Any, None] | None = None, timeout: float = 10) -> None:
        """Run ``shutdown`` on the loop (if started), then end the thread (an adopted loop
        goes on: it is its owner's)."""
        with self._lock:
            loop, thread, adopted = self._loop, self._thread, self._adopted
            self._loop = self._thread = None
            self._adopted = False
        if adopted and loop is not None and thread is threading.current_thread():
            if shutdown is not None:  # its owner's loop: run it there, unawaited
                if loop.is_running():
                    loop.create_task(shutdown)
                else:
                    shutdown.close()
            return
        if loop is None or thread is None or loop.is_closed():
            if shutdown is not None:
                shutdown.close()
            return
        if shutdown is not None:
            # Closing is best effort: the server cleans up after a lost connection.
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(shutdown, loop).result(timeout)
        if adopted:
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not threading.current_thread():
            thread.join(timeout)

    def _forked(self) -> None:
        """In a forked child: the parent's thread is gone; start afresh on first use."""
        self._lock = threading.Lock()
        self._loop = self._thread = None
        self._adopted = False
        if self._on_fork is not None:
            self._on_fork()


def _after_fork_in_child() -> None:
    for io in list(_AFTER_FORK):
        io._forked()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
