"""``cancel_and_wait``: how the worker stops its background tasks (event flusher, control
and revocation followers, lease heartbeat). On Python before 3.12 a cancel can be lost
when it lands as an ``asyncio.wait_for`` inside the task finishes (redis-py guards every
command's write that way); a warm stop then waited for good."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from celeriac._futures import RECANCEL_AFTER, cancel_and_wait


async def _loses_its_first_cancel(stopped: list[str]) -> None:
    """A service loop whose first cancel is lost, as ``wait_for`` loses it: it goes back
    to waiting for work that will never come."""
    with contextlib.suppress(asyncio.CancelledError):  # lost: the loop carries on
        await asyncio.sleep(3600)
    try:
        await asyncio.Event().wait()
    finally:
        stopped.append("ended")


def test_a_task_that_lost_its_cancel_is_cancelled_again_until_it_ends() -> None:
    async def scenario() -> tuple[list[str], float, bool]:
        stopped: list[str] = []
        task = asyncio.create_task(_loses_its_first_cancel(stopped))
        await asyncio.sleep(0)  # it waits in its loop
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(cancel_and_wait(task), 5)
        return stopped, asyncio.get_running_loop().time() - started, task.cancelled()

    stopped, took, cancelled = asyncio.run(scenario())
    assert stopped == ["ended"] and cancelled
    assert took < RECANCEL_AFTER * 4  # one more cancel after the first was lost


def test_a_task_that_ends_at_its_first_cancel_is_cancelled_once() -> None:
    async def scenario() -> int:
        cancels = 0

        async def service() -> None:
            nonlocal cancels
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels += 1
                await asyncio.sleep(RECANCEL_AFTER / 5)  # its clean-up, not interrupted
                raise

        task = asyncio.create_task(service())
        await asyncio.sleep(0)
        await cancel_and_wait(task)
        return cancels

    assert asyncio.run(scenario()) == 1


def test_an_error_the_task_ended_with_is_raised_as_awaiting_it_would() -> None:
    async def scenario() -> None:
        async def service() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                raise RuntimeError("its clean-up failed") from None

        task = asyncio.create_task(service())
        await asyncio.sleep(0)
        await cancel_and_wait(task)

    with pytest.raises(RuntimeError, match="its clean-up failed"):
        asyncio.run(scenario())
