"""The RabbitMQ engine's ack batcher: acks awaited from another loop are answered, in one
batch, and none is left waiting when the I/O loop stops under it (the broker closed)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from typing import Any

from celeriac.brokers.amqp.acks import AckBatcher
from celeriac.brokers.amqp.io import IOThread
from celeriac.exceptions import BrokerConnectionError


def test_acks_from_another_loop_are_answered_with_their_batch_results() -> None:
    io = IOThread("test-acks")
    batches: list[list[Any]] = []

    async def ack_many(deliveries: Sequence[Any]) -> list[bool]:
        batches.append(list(deliveries))
        return [delivery != "lost" for delivery in deliveries]

    batcher = AckBatcher(io, ack_many)

    async def caller() -> list[bool]:
        return list(await asyncio.gather(*(batcher.ack(d) for d in ("a", "lost", "b"))))

    try:
        assert asyncio.run(caller()) == [True, False, True]
        assert sorted(d for batch in batches for d in batch) == ["a", "b", "lost"]
    finally:
        io.stop()


def test_acks_left_on_a_stopped_io_loop_are_answered_with_an_error() -> None:
    io = IOThread("test-acks-stopped")
    sending = threading.Event()

    async def ack_many(deliveries: Sequence[Any]) -> list[bool]:
        sending.set()
        await asyncio.Event().wait()  # the frame is never written: the loop stops first
        return [True] * len(deliveries)

    batcher = AckBatcher(io, ack_many)

    async def caller() -> BaseException | None:
        acking = asyncio.ensure_future(batcher.ack("d"))
        await asyncio.to_thread(sending.wait)
        # The broker closes from another thread: its I/O loop stops, then the batcher is
        # told so.
        error = BrokerConnectionError("closed")
        await asyncio.to_thread(lambda: (io.stop(), batcher.abandon(error)))
        try:
            await asyncio.wait_for(acking, 10)
        except BrokerConnectionError as exc:
            return exc
        return None

    assert isinstance(asyncio.run(caller()), BrokerConnectionError)
    assert not batcher.pending()
