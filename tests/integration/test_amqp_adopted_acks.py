"""What the RabbitMQ broker leaves out to do less per message, and what it keeps.

Acks on a loop the broker adopted (a threads, prefork or solo worker's) are settled at
once on that loop and queued for the socket without waiting for the write; a close writes
every queued ack before the connection goes, so what a worker acked just before a warm
stop is not delivered again. A task message's first copy carries no headers table (its
reader finds the id in ``correlation_id`` and no earlier hand-outs); a copy published
again carries its count. ``settle_acks`` waits until RabbitMQ has applied them: a process
killed right after loses none."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from typing import Any

import aiormq
import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from tests.integration.workers import ROOT


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


# Takes one message, acks it, settles, and dies at once (SIGKILL: no close, no write of
# what is still queued). argv: url, namespace, queue, "adopted" or "io-thread".
_ACK_THEN_DIE = """
import asyncio, os, signal, sys
from celeriac.brokers.amqp import AmqpBroker

url, namespace, queue, mode = sys.argv[1:]

async def main():
    broker = AmqpBroker(url, transport_options={"namespace": namespace})
    if mode == "adopted":
        assert broker.adopt_loop(asyncio.get_running_loop())
    # Two queues: taken with basic.get, so no consumer's cancel pushes the ack out.
    (delivery,) = await broker.fetch([queue, queue + "-none"], 1, 5.0)
    assert await delivery.ack()
    await broker.settle_acks()
    os.kill(os.getpid(), signal.SIGKILL)

asyncio.run(main())
"""


@pytest.mark.parametrize("mode", ["adopted", "io-thread"])
def test_a_settled_ack_survives_the_process_killed_right_after(
    amqp_url: str, amqp_namespace: str, mode: str
) -> None:
    """A queue move promises at most one message twice after a crash: the ack of a moved
    message must be applied before the next is published. (On an adopted loop an ack is
    only queued for the socket: without ``settle_acks`` this kill loses it.)"""
    queue = f"settled-{uuid.uuid4().hex[:8]}"
    broker = _broker(amqp_url, amqp_namespace)
    try:
        broker.publish(OutboundMessage(queue, b"{}", "the-task-id"))
        broker.flush()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}
        child = subprocess.run(
            [sys.executable, "-c", _ACK_THEN_DIE, amqp_url, amqp_namespace, queue, mode],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert child.returncode == -9, child.stderr  # it got as far as the kill
        # An ack RabbitMQ never applied would bring the message back once it sees the
        # connection gone (at once, as the kernel closes the socket).
        assert asyncio.run(broker.fetch([queue, f"{queue}-none"], 1, 2.0)) == []
        assert broker.queue_length(queue) == 0
    finally:
        broker.close()
