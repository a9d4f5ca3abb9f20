"""Quick figures for the RabbitMQ broker alone (no worker): run it, read the numbers.

    .venv/bin/python bench/amqp_broker_quick.py [--n 5000] [--url amqp://guest:guest@127.0.0.1:5672//]

Measures per-call publish (each confirm awaited, and pipelined), publish_many, and
fetch+ack drains (batches of 1 and 100), on a unique namespace and queue whose messages it
drains. The side-by-side benchmark against Celery and its peers is ``python -m bench``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from celeriac.messages.protocol import task_message


def payload(n: int) -> bytes:
    return task_message(task_name="bench.noop", task_id=f"{n:032x}", args=(n,)).encode()


async def drain(broker: AmqpBroker, queue: str, n: int, batch: int) -> float:
    started, done = time.perf_counter(), 0
    while done < n:
        deliveries = await broker.fetch([queue], batch, 1)
        for delivery in deliveries:
            await delivery.ack()
        done += len(deliveries)
    return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672//")
    args = parser.parse_args()
    tag = uuid.uuid4().hex[:8]
    broker = AmqpBroker(args.url, transport_options={"namespace": f"bench-{tag}"})
    waited = AmqpBroker(
        args.url, transport_options={"namespace": f"bench-{tag}", "confirm_publish": True}
    )
    queue = f"bench-{tag}"
    messages = [OutboundMessage(queue, payload(i), f"{i:032x}") for i in range(args.n)]
    try:
        started = time.perf_counter()
        for message in messages:
            waited.publish(message)
        rate = args.n / (time.perf_counter() - started)
        print(f"publish, one call each, confirm_publish=True: {rate:8.0f} msg/s")
        asyncio.run(drain(broker, queue, args.n, 100))
        started = time.perf_counter()
        for message in messages:
            broker.publish(message)
        broker.flush()
        rate = args.n / (time.perf_counter() - started)
        print(f"publish, one call each, pipelined (+flush):   {rate:8.0f} msg/s")
        print(
            f"drain, fetch 1 + ack:      {asyncio.run(drain(broker, queue, args.n, 1)):8.0f} msg/s"
        )
        started = time.perf_counter()
        for start in range(0, args.n, 1000):
            broker.publish_many(messages[start : start + 1000])
        print(f"publish_many, 1000 a call: {args.n / (time.perf_counter() - started):8.0f} msg/s")
        rate = asyncio.run(drain(broker, queue, args.n, 100))
        print(f"drain, fetch 100 + acks:   {rate:8.0f} msg/s")
        print(f"message size: {len(messages[0].payload)} bytes")
    finally:
        broker.close()
        waited.close()


if __name__ == "__main__":
    main()
