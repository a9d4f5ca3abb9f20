"""Handing one future's outcome to another (stdlib only: engines and pools both use it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import TypeVar

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


__all__ = ["copy_outcome"]
