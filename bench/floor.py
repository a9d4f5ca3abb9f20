"""The idle hand-off floor: how soon any tool could start a task on this machine.

    .venv/bin/python -m bench.floor               # both brokers, 200 samples each
    .venv/bin/python -m bench.floor --broker amqp -n 300

The benchmark's idle latency (enqueue -> start, one task at a time after a 5 ms pause)
includes the sender's own call and the wake-up of an idle worker, a broker and their
CPUs. This measures the same thing with no task queue at all, so a latency target can be
weighed against what the machine allows:

- **Redis**: a second process waits in ``BLPOP``; the sender takes ``time.time()`` and
  ``RPUSH``es it (one command, as a send); the waiter pushes back (now - that time). One
  command each way, as a tool whose workers pop the queue themselves would do at best.
- **RabbitMQ**: a second process consumes a queue with aiormq (acks on); the sender
  publishes a persistent message carrying ``time.time()`` on a channel without confirms
  (the cheapest publish) to a durable queue; the consumer pushes back (now - that time)
  through Redis.

Both run from the harness's Python (redis-py, aiormq: celeriac's own dependencies).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import redis

PAUSE = 0.005  # between samples: the benchmark's idle latency pause


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(broker: str, n: int, redis_url: str, amqp_url: str) -> list[float]:
    """``n`` idle hand-offs through ``broker`` ("redis" or "amqp"), in seconds."""
    r = redis.Redis.from_url(redis_url, socket_timeout=None)
    tag = uuid.uuid4().hex[:8]
    inbox, answers = f"bench:floor:{tag}:in", f"bench:floor:{tag}:out"
    queue = f"bench.floor.{tag}"
    waiter = subprocess.Popen(
        [sys.executable, "-m", "bench.floor", "--serve", broker, "--redis-url", redis_url,
         "--amqp-url", amqp_url, "--inbox", inbox, "--answers", answers, "--queue", queue],
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )  # fmt: skip
    try:
        if broker == "redis":
            return _samples(r, answers, n + 10, lambda: r.rpush(inbox, time.time()))[10:]
        return asyncio.run(_amqp_samples(redis_url, answers, n + 10, amqp_url, queue))[10:]
    finally:
        waiter.terminate()
        waiter.wait(10)
        r.delete(inbox, answers)
        r.close()


def _samples(r: redis.Redis, answers: str, n: int, send: Any) -> list[float]:
    r.blpop([answers], 60)  # the waiter is up (it says so once)
    out = []
    for _ in range(n):
        time.sleep(PAUSE)  # the idle gap (the stimulus, not a wait)
        send()
        popped = r.blpop([answers], 30)
        if popped is None:
            raise RuntimeError("the floor's waiter did not answer within 30 s")
        out.append(float(popped[1]))
    return out


async def _amqp_samples(
    redis_url: str, answers: str, n: int, amqp_url: str, queue: str
) -> list[float]:
    """As ``_samples``, all on one loop: the publish is written by the sending call
    itself, with no thread hop (the cheapest a sender can do)."""
    import aiormq
    import redis.asyncio
    from aiormq import spec

    ar = redis.asyncio.Redis.from_url(redis_url, socket_timeout=None)
    connection = await aiormq.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=False)
        await channel.queue_declare(queue, durable=True, auto_delete=True)
        persistent = spec.Basic.Properties(delivery_mode=2)
        await ar.blpop([answers], 60)  # the consumer is up (it says so once)
        out = []
        for _ in range(n):
            await asyncio.sleep(PAUSE)  # the idle gap (the stimulus, not a wait)
            body = repr(time.time()).encode()
            await channel.basic_publish(body, routing_key=queue, properties=persistent)
            popped = await ar.blpop([answers], 30)
            if popped is None:
                raise RuntimeError("the floor's consumer did not answer within 30 s")
            out.append(float(popped[1]))
        return out  # (the queue goes with its consumer)
    finally:
        await connection.close()
        await ar.aclose()


def serve(broker: str, redis_url: str, amqp_url: str, inbox: str, answers: str, queue: str) -> None:
    r = redis.Redis.from_url(redis_url, socket_timeout=None)
    if broker == "redis":
        r.rpush(answers, 0.0)  # up
        while True:
            popped = r.blpop([inbox], 0)
            if popped is not None:
                r.rpush(answers, time.time() - float(popped[1]))
    asyncio.run(_consume(r, amqp_url, answers, queue))


async def _consume(r: redis.Redis, amqp_url: str, answers: str, queue: str) -> None:
    import aiormq

    connection = await aiormq.connect(amqp_url)
    channel = await connection.channel()
    await channel.queue_declare(queue, durable=True, auto_delete=True)
    await channel.basic_qos(prefetch_count=1)

    async def on_message(message: Any) -> None:
        started = time.time()
        await channel.basic_ack(message.delivery_tag)
        await asyncio.to_thread(r.rpush, answers, started - float(message.body))

    await channel.basic_consume(queue, on_message)
    r.rpush(answers, 0.0)  # up
    await asyncio.Event().wait()  # until terminated


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.split("\n")[0])
    p.add_argument("--broker", default="both", choices=("both", "redis", "amqp"))
    p.add_argument("-n", type=int, default=200, help="samples per broker")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    p.add_argument("--serve", choices=("redis", "amqp"), help=argparse.SUPPRESS)
    p.add_argument("--inbox", help=argparse.SUPPRESS)
    p.add_argument("--answers", help=argparse.SUPPRESS)
    p.add_argument("--queue", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve, args.redis_url, args.amqp_url, args.inbox, args.answers, args.queue)
        return
    for broker in ("redis", "amqp") if args.broker == "both" else (args.broker,):
        values = measure(broker, args.n, args.redis_url, args.amqp_url)
        print(f"{broker}: idle hand-off p50 {statistics.median(values) * 1000:.2f} ms, "
              f"p99 {percentile(values, 0.99) * 1000:.2f} ms ({len(values)} samples)")  # fmt: skip


if __name__ == "__main__":
    main()
