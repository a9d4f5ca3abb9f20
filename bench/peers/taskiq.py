"""Taskiq with taskiq-redis: the broker its worker loads, and the asyncio producer.

Worker: ``taskiq worker bench.peers.taskiq:broker`` with Taskiq's defaults (2 worker
processes, up to 100 async tasks each) on ``RedisStreamBroker`` (the broker the
taskiq-redis README shows: Redis streams with acknowledgements). No result backend.
Taskiq has no bulk enqueue.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from taskiq_redis import RedisStreamBroker

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("taskiq", "taskiq-redis", "redis", "hiredis")

broker = RedisStreamBroker(url=SETTINGS.broker_url, queue_name=SETTINGS.queue)
TASKS = {kind: broker.task(task_name=f"bench.{kind}")(body) for kind, body in _common.ASYNC.items()}


def describe() -> str:
    return "2 worker processes x 100 async tasks (Taskiq's defaults), RedisStreamBroker"


def worker_command(bindir: str) -> list[str]:
    return [os.path.join(bindir, "taskiq"), "worker", "bench.peers.taskiq:broker"]


class Client:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.loop.run_until_complete(broker.startup())

    async def _send(self, kind: str, args: list[Any]) -> None:
        kiq = TASKS[kind].kiq
        for arg in args:
            await kiq(arg)

    def send(self, kind: str, args: list[Any]) -> None:
        self.loop.run_until_complete(self._send(kind, args))

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        return None

    def close(self) -> None:
        self.loop.run_until_complete(broker.shutdown())
        self.loop.close()
