"""Quick figures for the Redis broker alone (no worker yet): run it, read the numbers.

    .venv/bin/python bench/redis_broker_quick.py [--n 20000] [--url redis://127.0.0.1:6379/15]

Measures per-call publish, pipelined publish_many, fetch+ack drain (batches of 1 and 100)
and Redis memory per queued message, on a unique key prefix that it deletes afterwards.
The full side-by-side benchmark against Celery and its peers is a separate piece of work.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import redis

from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.messages.protocol import task_message


def payload(n: int) -> bytes:
    return task_message(task_name="bench.noop", task_id=f"{n:032x}", args=(n,)).encode()


async def drain(broker: RedisBroker, queue: str, n: int, batch: int) -> float:
    started, done = time.perf_counter(), 0
    while done < n:
        deliveries = await broker.fetch([queue], batch, 1)
        for delivery in deliveries:
            await delivery.ack()
        done += len(deliveries)
    elapsed = time.perf_counter() - started
    await broker.close_async()
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    args = parser.parse_args()
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    broker = RedisBroker(args.url, transport_options={"key_prefix": prefix})
    raw = redis.Redis.from_url(args.url)
    messages = [OutboundMessage("q", payload(i), f"{i:032x}") for i in range(args.n)]
    try:
        before = int(raw.info("memory")["used_memory"])
        started = time.perf_counter()
        for message in messages:
            broker.publish(message)
        print(f"publish, one call each : {args.n / (time.perf_counter() - started):9,.0f} /s")
        per_message = (int(raw.info("memory")["used_memory"]) - before) / args.n
        print(f"Redis memory per queued message: {per_message:6.0f} bytes "
              f"(payload {len(messages[0].payload)} bytes)")  # fmt: skip
        print(f"drain, fetch 1 + ack    : {asyncio.run(drain(broker, 'q', args.n, 1)):9,.0f} /s")
        started = time.perf_counter()
        for start in range(0, args.n, 1000):
            broker.publish_many(messages[start : start + 1000])
        print(f"publish_many (1000/call): {args.n / (time.perf_counter() - started):9,.0f} /s")
        rate = asyncio.run(drain(broker, "q", args.n, 100))
        print(f"drain, fetch 100 + acks : {rate:9,.0f} /s")
    finally:
        keys = list(raw.scan_iter(match=f"{prefix}*"))
        if keys:
            raw.delete(*keys)
        broker.close()
        raw.close()


if __name__ == "__main__":
    main()
