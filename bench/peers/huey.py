"""Huey: the RedisHuey instance its consumer loads, and the producer the harness drives.

Consumer: ``huey_consumer bench.peers.huey.huey -w <n> -k thread -q`` with Huey's
defaults (blocking reads, results kept for tasks that return a value: these return
None, so none are stored). Bulk enqueue: ``task.map(...)``, which enqueues one by one.
"""

from __future__ import annotations

import os
from typing import Any

from huey import RedisHuey

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("huey", "redis", "hiredis")

huey = RedisHuey(SETTINGS.queue, url=SETTINGS.broker_url)
TASKS = {kind: huey.task(name=f"bench.{kind}")(body) for kind, body in _common.SYNC.items()}


def describe() -> str:
    return f"{SETTINGS.concurrency} worker threads, Huey's defaults (RedisHuey, blocking reads)"


def worker_command(bindir: str) -> list[str]:
    return [
        os.path.join(bindir, "huey_consumer"),
        "bench.peers.huey.huey",
        "-w",
        str(SETTINGS.concurrency),
        "-k",
        "thread",
        "-q",
    ]


class Client:
    def send(self, kind: str, args: list[Any]) -> None:
        task = TASKS[kind]
        for arg in args:
            task(arg)

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        TASKS[kind].map(args)
        return "task.map(...) (enqueues one by one)"

    def close(self) -> None:
        huey.storage.conn.close()
