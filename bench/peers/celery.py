"""Celery 5: the app and tasks its worker loads, and the producer the harness drives.

Worker: ``celery -A bench.peers.celery worker -P <threads|prefork> -c <n> -Q <queue>
-l WARNING`` with Celery's defaults (prefetch multiplier 4, early acks), no result
backend, on Redis (redis-py) or RabbitMQ (py-amqp; no librabbitmq, publisher confirms
off, the default). Bulk enqueue: ``group(...).apply_async()``, 1,000 signatures per group.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, group

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("celery", "kombu", "amqp", "redis", "hiredis")
CHUNK = 1000

app = Celery("bench", broker=SETTINGS.broker_url)
app.conf.update(
    task_default_queue=SETTINGS.queue,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
)
TASKS = {kind: app.task(name=f"bench.{kind}")(body) for kind, body in _common.SYNC.items()}


def describe() -> str:
    return (
        f"pool {SETTINGS.pool}, -c {SETTINGS.concurrency}, Celery defaults "
        "(prefetch multiplier 4, acks early), no result backend"
    )


def worker_command(bindir: str) -> list[str]:
    return [
        os.path.join(bindir, "celery"),
        "-A",
        "bench.peers.celery",
        "worker",
        "-P",
        SETTINGS.pool,
        "-c",
        str(SETTINGS.concurrency),
        "-Q",
        SETTINGS.queue,
        "-l",
        "WARNING",
    ]


class Client:
    def send(self, kind: str, args: list[Any]) -> None:
        delay = TASKS[kind].delay
        for arg in args:
            delay(arg)

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        task = TASKS[kind]
        for start in range(0, len(args), CHUNK):
            group(task.s(arg) for arg in args[start : start + CHUNK]).apply_async()
        return f"group(...).apply_async(), {CHUNK} per group"

    def close(self) -> None:
        app.close()
