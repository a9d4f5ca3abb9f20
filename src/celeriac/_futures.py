"""Handing one future's outcome to another, and stopping a task for good (stdlib only:
engines, pools and the worker's services use them)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any, TypeVar

T = TypeVar("T")


def copy_outcome(
    source: asyncio.Future[T] | concurrent.futures.Future[T], target: asyncio.Future[T]
) -> None:
    """Give ``target`` what the finished ``source`` ended with: its result, its error, or
    its cancellation. A ``target`` already done (its waiter was cancelled) is left alone."""
    if target.done():
        return
    if source.cancelled():
        target.cancel()
    elif (error := source.exception()) is not None:
        target.set_exception(error)
    else:
        target.set_result(source.result())


# How long a cancelled task may take to end (its clean-up included) before it is
# cancelled again.
RECANCEL_AFTER = 0.5


async def cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` and wait until it has ended, cancelling it again while it runs on.

    A single ``cancel()`` can be lost on Python before 3.12: ``asyncio.wait_for`` returns
    its result instead of raising when the operation it guards finishes in the same step
    as the cancel (CPython gh-86296). redis-py guards every command's write that way, so a
    task cancelled just as it sent a command carries on, and a service stopped by
    cancelling its loop task (then awaiting it) would wait for good. An error the task
    ended with is raised, as awaiting it would."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=RECANCEL_AFTER)
    if not task.cancelled():
        task.result()


__all__ = ["cancel_and_wait", "copy_outcome"]
