"""What the RabbitMQ broker leaves out to do less per message, and what it keeps.

Acks on a loop the broker adopted (a threads, prefork or solo worker's) are settled at
once on that loop and queued for the socket without waiting for the write; a close writes
every queued ack before the connection goes, so what a worker acked just before a warm
stop is not delivered again. A task message's first copy carries no headers table (its
reader finds the id in ``correlation_id`` and no earlier hand-outs); a copy published
again carries its count."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiormq

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage


def _broker(url: str, namespace: str) -> AmqpBroker:
    return AmqpBroker(url, transport_options={"namespace": namespace})


def test_acks_written_just_before_a_close_are_not_delivered_again(
    amqp_url: str, amqp_namespace: str
) -> None:
    # Two queues: the fetch takes with basic.get, so no consumer stands whose cancel,
    # sent on close, would push the queued acks out anyway; and fewer acks than aiormq
    # queues before a write must wait, so none waits for the writer.
    queues = [f"adopted-{uuid.uuid4().hex[:8]}-{side}" for side in ("a", "b")]
    sender = _broker(amqp_url, amqp_namespace)
    try:
        for queue in queues:
            for _ in range(3):
                sender.publish(OutboundMessage(queue, b"{}", uuid.uuid4().hex))
        sender.flush()
    finally:
        sender.close()

    async def take_ack_close() -> tuple[int, list[bool]]:
        worker = _broker(amqp_url, amqp_namespace)
        assert worker.adopt_loop(asyncio.get_running_loop())
        taken = []
        while len(taken) < 6:
            taken += await worker.fetch(queues, 6 - len(taken), 5.0)
        acked = [await delivery.ack() for delivery in taken]  # (none of them waits)
        await worker.close_async()  # at once: the acks are still queued
        return len(taken), acked

    taken, acked = asyncio.run(take_ack_close())
    assert taken == 6 and all(acked)

    checker = _broker(amqp_url, amqp_namespace)
    try:
        for queue in queues:
            assert checker.queue_length(queue) == 0
        again = asyncio.run(checker.fetch(queues, 10, 1.0))
        assert again == []
    finally:
        checker.close()


def _raw_copy(url: str, queue: str) -> Any:
    """The properties of the next copy in ``queue``, read (and taken) with aiormq itself."""

    async def get() -> Any:
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel()
            message = await channel.basic_get(queue, no_ack=True)
            return message.header.properties
        finally:
            await connection.close()

    return asyncio.run(get())


def test_a_first_copy_carries_no_headers_and_a_requeued_one_its_count(
    amqp_url: str, amqp_namespace: str
) -> None:
    """The reader finds a task's id in ``correlation_id`` and no earlier hand-outs without
    headers; a copy published again carries its count."""
    queue = f"headers-{uuid.uuid4().hex[:8]}"
    broker = _broker(amqp_url, amqp_namespace)
    try:
        for _ in range(2):
            broker.publish(OutboundMessage(queue, b"{}", "the-task-id"))
        broker.flush()
        first = _raw_copy(amqp_url, queue)
        assert first.correlation_id == "the-task-id"
        assert not first.headers  # no table at all

        async def requeue_counted() -> tuple[str, int]:
            # Two queues: taken with basic.get, so no consumer stands to take the new copy.
            (delivery,) = await broker.fetch([queue, f"{queue}-none"], 1, 5.0)
            await delivery.requeue(count_delivery=True)
            return delivery.message_id, delivery.delivery_count

        assert asyncio.run(requeue_counted()) == ("the-task-id", 1)
        again = _raw_copy(amqp_url, queue)
        assert again.correlation_id == "the-task-id"
        assert again.headers == {"x-celeriac-deliveries": 1}
    finally:
        broker.close()
