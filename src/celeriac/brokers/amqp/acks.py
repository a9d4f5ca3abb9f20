"""Acks handed from the worker's loop to the broker's I/O loop in batches.

An ack awaited through ``run_coroutine_threadsafe`` costs two thread hops (a wake-up of
the I/O loop, then one of the caller's loop) and one frame written to the socket. At
thousands of short tasks a second that is much of a worker's CPU. Here an ack joins a
list and the I/O loop is woken only when no wake-up is on its way already; the loop
settles everything that waits in one go (``Consumption.ack_many``: consecutive delivery
tags of a channel become one ``basic.ack`` with ``multiple``), and answers each caller's
loop with one wake-up. A worker whose loop the broker adopted (threads, prefork, solo)
has no hop to save: its acks are settled at once, on its own loop. Imports only the
stdlib and the engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from celeriac.brokers.amqp.io import IOThread

# What settles a batch on the I/O loop: one answer (True/False, or an exception) each.
AckMany = Callable[[Sequence[Any]], Awaitable[list[Any]]]


class AckBatcher:
    """``ack`` from any loop; the acks that meet while the I/O loop is busy share a trip."""

    def __init__(self, io: IOThread, ack_many: AckMany) -> None:
        self._io = io
        self._ack_many = ack_many
        self._lock = threading.Lock()
        self._waiting: list[tuple[Any, asyncio.Future[bool]]] = []
        self._waking = False
        # Sends running on the I/O loop, with their batches (strong references to both).
        self._sending: dict[asyncio.Task[None], list[tuple[Any, asyncio.Future[bool]]]] = {}

    def pending(self) -> bool:
        """Whether acks wait to be written (gathered, or in a batch being sent)."""
        return bool(self._waiting or self._sending)

    async def ack(self, delivery: Any) -> bool:
        if self._io.in_thread():
            # The I/O loop is the caller's own (adopted): there is no hop to share. Settled
            # at once, it costs less than a batch's task, futures and answers would.
            return bool((await self._ack_many([delivery]))[0])
        answer: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        with self._lock:
            self._waiting.append((delivery, answer))
            wake, self._waking = not self._waking, True
        if wake:
            if self._io.in_thread():  # the I/O loop is ours (adopted): no self-pipe write
                asyncio.get_running_loop().call_soon(self._start)
            else:
                self._io.loop.call_soon_threadsafe(self._start)
        return await answer

    def abandon(self, error: BaseException) -> None:
        """The I/O loop has stopped (the broker closed): every ack still gathered, or in a
        batch whose send will never end, is answered with ``error``."""
        with self._lock:
            batches = [self._waiting, *self._sending.values()]
            self._waiting, self._sending, self._waking = [], {}, False
        _reply([(answer, error) for batch in batches for _, answer in batch])

    def _start(self) -> None:
        """On the I/O loop: take every ack that waits and send them together."""
        with self._lock:
            batch, self._waiting = self._waiting, []
            self._waking = False
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending[task] = batch
        task.add_done_callback(self._sent)

    def _sent(self, task: asyncio.Task[None]) -> None:
        with self._lock:
            self._sending.pop(task, None)

    async def _send(self, batch: list[tuple[Any, asyncio.Future[bool]]]) -> None:
        try:
            results: list[Any] = await self._ack_many([delivery for delivery, _ in batch])
        except Exception as exc:  # the whole batch failed alike (the link went down)
            results = [exc] * len(batch)
        _reply([(answer, result) for (_, answer), result in zip(batch, results, strict=True)])


def _reply(answers: list[tuple[asyncio.Future[bool], Any]]) -> None:
    """Each answer on its caller's loop: directly on the running loop, with one wake-up of
    each other loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], Any]]] = {}
    for answer, result in answers:
        by_loop.setdefault(answer.get_loop(), []).append((answer, result))
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # (abandon, from the thread that closed the broker)
        here = None
    for loop, answered in by_loop.items():
        if loop is here:  # callers on the I/O loop itself are answered directly
            _answer(answered)
            continue
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_answer, answered)


def _answer(answers: list[tuple[asyncio.Future[bool], Any]]) -> None:
    """On the caller's loop: each waiting ack gets its result."""
    for answer, result in answers:
        if answer.done():  # the caller stopped waiting (a cold shutdown)
            continue
        if isinstance(result, BaseException):
            answer.set_exception(result)
        else:
            answer.set_result(bool(result))
