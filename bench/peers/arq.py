"""arq: the worker settings its CLI loads, and the (asyncio) producer the harness drives.

Worker: ``arq bench.peers.arq.WorkerSettings`` with arq's defaults (``max_jobs`` 10,
``poll_delay`` 0.5 s, results kept one hour). arq has no bulk enqueue.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq import create_pool
from arq.connections import RedisSettings
from arq.worker import func

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("arq", "redis", "hiredis")
REDIS = RedisSettings.from_dsn(SETTINGS.broker_url)


def _job(body: Any) -> Any:
    async def job(ctx: dict[str, Any], arg: Any) -> None:
        await body(arg)

    return job


class WorkerSettings:
    functions = [func(_job(body), name=kind) for kind, body in _common.ASYNC.items()]
    redis_settings = REDIS
    queue_name = SETTINGS.queue


def describe() -> str:
    return "one process, arq's defaults (max_jobs 10, poll_delay 0.5 s, results kept 1 h)"


def worker_command(bindir: str) -> list[str]:
    return [os.path.join(bindir, "arq"), "bench.peers.arq.WorkerSettings"]


class Client:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.pool = self.loop.run_until_complete(
            create_pool(REDIS, default_queue_name=SETTINGS.queue)
        )

    async def _send(self, kind: str, args: list[Any]) -> None:
        enqueue = self.pool.enqueue_job
        for arg in args:
            await enqueue(kind, arg)

    def send(self, kind: str, args: list[Any]) -> None:
        self.loop.run_until_complete(self._send(kind, args))

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        return None

    def close(self) -> None:
        self.loop.run_until_complete(self.pool.aclose())
        self.loop.close()
