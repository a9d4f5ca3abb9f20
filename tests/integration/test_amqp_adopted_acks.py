"""Acks on a loop the RabbitMQ broker adopted (a threads, prefork or solo worker's): each is
settled at once on that loop, queued for the socket without waiting for the write, and
a close writes every queued ack before the connection goes, so what a worker acked just
before a warm stop is not delivered again."""

from __future__ import annotations

import asyncio
import uuid

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
