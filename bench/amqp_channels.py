"""Does consuming on one channel per pool slot help? Raw aiormq, no task queue.

    .venv/bin/python -m bench.amqp_channels              # 1x8, 8x1, 2x4; 20,000 each
    .venv/bin/python -m bench.amqp_channels -n 50000 --layouts 1x8,4x2

Publishes N persistent messages to a durable queue of its own, then drains them with
``C`` channels on one connection, each consuming with a prefetch of ``P`` and acking
every message as soon as it arrives: a worker of ``C x P`` slots that does nothing else.
Prints messages per second and this process's CPU per message for each layout. The
queue is deleted after each layout. Uses the default vhost unless ``--amqp-url``.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

import aiormq

QUEUE = "celeriac-bench-channels"
BODY = b'{"args": [1], "kwargs": {}}' * 8  # about a small task message's size


async def drain(url: str, n: int, channels: int, prefetch: int) -> tuple[float, float]:
    """Messages per second, and CPU microseconds per message, for one layout."""
    connection = await aiormq.connect(url)
    try:
        setup = await connection.channel()
        await setup.queue_delete(QUEUE)
        await setup.queue_declare(QUEUE, durable=True)
        persistent = aiormq.spec.Basic.Properties(delivery_mode=2)
        for _ in range(n):
            await setup.basic_publish(BODY, routing_key=QUEUE, properties=persistent)
        finished = asyncio.Event()
        seen = 0
        first: float | None = None

        def on_message_for(channel: Any) -> Any:
            async def on_message(message: Any) -> None:
                nonlocal seen, first
                if first is None:
                    first = time.perf_counter()
                await channel.basic_ack(message.delivery.delivery_tag)
                seen += 1
                if seen >= n:
                    finished.set()

            return on_message

        before = resource.getrusage(resource.RUSAGE_SELF)
        consumers = []
        for _ in range(channels):
            channel = await connection.channel()
            await channel.basic_qos(prefetch_count=prefetch)
            ok = await channel.basic_consume(QUEUE, on_message_for(channel))
            consumers.append((channel, ok.consumer_tag))
        await finished.wait()
        ended = time.perf_counter()
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        assert first is not None
        for channel, tag in consumers:  # (a queue deleted under its consumers logs each)
            await channel.basic_cancel(tag)
        await setup.queue_delete(QUEUE)
        return n / (ended - first), cpu / n * 1e6
    finally:
        await connection.close()


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.amqp_channels", description=__doc__)
    p.add_argument("-n", type=int, default=20_000, help="messages per layout")
    p.add_argument("--layouts", default="1x8,8x1,2x4", help="CHANNELSxPREFETCH, comma-separated")
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    args = p.parse_args()
    for layout in args.layouts.split(","):
        channels, prefetch = (int(part) for part in layout.split("x"))
        rate, cpu = asyncio.run(drain(args.amqp_url, args.n, channels, prefetch))
        print(f"{channels} channel(s) x prefetch {prefetch}: {rate:,.0f} messages/s, "
              f"{cpu:.0f} us CPU per message")  # fmt: skip


if __name__ == "__main__":
    main()
