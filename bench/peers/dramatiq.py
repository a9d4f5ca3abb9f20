"""Dramatiq: the broker and actors its worker loads, and the producer the harness drives.

Worker: ``dramatiq bench.peers.dramatiq --processes 1 --threads <n> --queues <queue>``
with Dramatiq's default middleware, on Redis or RabbitMQ (pika; ``confirm_delivery``
off, the default). Bulk enqueue: ``dramatiq.group([...]).run()``.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("dramatiq", "redis", "pika", "hiredis")
CHUNK = 1000

if SETTINGS.broker == "amqp":
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker: dramatiq.Broker = RabbitmqBroker(url=SETTINGS.broker_url)
else:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(url=SETTINGS.broker_url)
dramatiq.set_broker(broker)
ACTORS = {
    kind: dramatiq.actor(body, actor_name=f"bench_{kind}", queue_name=SETTINGS.queue)
    for kind, body in _common.SYNC.items()
}


def describe() -> str:
    return f"1 process x {SETTINGS.concurrency} threads, Dramatiq's default middleware"


def worker_command(bindir: str) -> list[str]:
    return [
        os.path.join(bindir, "dramatiq"),
        "bench.peers.dramatiq",
        "--processes",
        "1",
        "--threads",
        str(SETTINGS.concurrency),
        "--queues",
        SETTINGS.queue,
    ]


class Client:
    def send(self, kind: str, args: list[Any]) -> None:
        send = ACTORS[kind].send
        for arg in args:
            send(arg)

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        actor = ACTORS[kind]
        for start in range(0, len(args), CHUNK):
            dramatiq.group([actor.message(arg) for arg in args[start : start + CHUNK]]).run()
        return f"dramatiq.group([...]).run(), {CHUNK} per group"

    def close(self) -> None:
        broker.close()
