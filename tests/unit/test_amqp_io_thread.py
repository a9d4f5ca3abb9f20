"""The RabbitMQ engine's I/O thread: work handed to it from another loop comes back with
its result, its error or its cancellation, and a cancelled caller stops the work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from celeriac.brokers.amqp.io import IOThread


@pytest.fixture
def io() -> Iterator[IOThread]:
    thread = IOThread("test-amqp-io")
    yield thread
    thread.stop()


def test_work_runs_on_the_io_thread_and_its_result_comes_back(io: IOThread) -> None:
    async def where() -> str:
        return threading.current_thread().name

    async def caller() -> str:
        return await io.run_async(where())

    assert asyncio.run(caller()) == "test-amqp-io"


def test_an_error_raised_by_the_work_is_raised_to_the_caller(io: IOThread) -> None:
    async def fails() -> None:
        raise LookupError("no such queue")

    async def caller() -> None:
        await io.run_async(fails())

    with pytest.raises(LookupError, match="no such queue"):
        asyncio.run(caller())


def test_cancelling_the_caller_cancels_the_work(io: IOThread) -> None:
    started, stopped = threading.Event(), threading.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    async def caller() -> None:
        waiting = asyncio.ensure_future(io.run_async(forever()))
        await asyncio.to_thread(started.wait, 5)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(caller())
    assert stopped.wait(5), "the work went on after its caller was cancelled"


def test_the_io_thread_refuses_to_wait_on_itself(io: IOThread) -> None:
    async def inner() -> None:
        return None

    async def nested() -> None:
        io.run(inner())  # the sync face, on the I/O loop: it would wait for itself

    with pytest.raises(RuntimeError, match="broker's own I/O thread"):
        io.run(nested())


def test_an_adopted_loop_serves_in_its_own_thread_until_released(io: IOThread) -> None:
    async def where() -> str:
        return threading.current_thread().name

    async def worker() -> tuple[bool, str, str]:
        adopted = io.adopt(asyncio.get_running_loop())
        here = await io.run_async(where())  # no hand-off: awaited on this loop
        from_a_thread = await asyncio.to_thread(io.run, where())  # the sync face, too
        io.release()
        return adopted, here, from_a_thread

    main = threading.current_thread().name
    assert asyncio.run(worker()) == (True, main, main)
    # Released: the next call starts the I/O thread of its own.
    assert io.run(where()) == "test-amqp-io"


def test_a_started_io_thread_is_not_replaced_by_a_loop(io: IOThread) -> None:
    async def nothing() -> None:
        return None

    io.run(nothing())  # the thread has started: its connection would stay there

    async def worker() -> bool:
        return io.adopt(asyncio.get_running_loop())

    assert asyncio.run(worker()) is False
