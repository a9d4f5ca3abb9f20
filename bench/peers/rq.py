"""RQ: the producer the harness drives; ``rq worker`` imports the task functions by path.

Worker: ``rq worker <queue> --url <redis> -q``: the default ``Worker``, which forks a
work horse per job; RQ's default result and job TTLs. Bulk enqueue:
``Queue.enqueue_many`` (one pipeline per 1,000 jobs).
"""

from __future__ import annotations

import os
from typing import Any

from redis import Redis
from rq import Queue

from bench.peers import _common

SETTINGS = _common.SETTINGS
PACKAGES = ("rq", "redis", "hiredis")
CHUNK = 1000
FUNCTIONS = {kind: f"bench.peers._common.{body.__name__}" for kind, body in _common.SYNC.items()}


def describe() -> str:
    return "one worker, fork per job (the default Worker), RQ's default TTLs"


def worker_command(bindir: str) -> list[str]:
    return [
        os.path.join(bindir, "rq"),
        "worker",
        SETTINGS.queue,
        "--url",
        SETTINGS.broker_url,
        "-q",
    ]


class Client:
    def __init__(self) -> None:
        self.connection = Redis.from_url(SETTINGS.broker_url)
        self.queue = Queue(SETTINGS.queue, connection=self.connection)

    def send(self, kind: str, args: list[Any]) -> None:
        enqueue, function = self.queue.enqueue, FUNCTIONS[kind]
        for arg in args:
            enqueue(function, arg)

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        function = FUNCTIONS[kind]
        for start in range(0, len(args), CHUNK):
            chunk = args[start : start + CHUNK]
            self.queue.enqueue_many([Queue.prepare_data(function, (arg,)) for arg in chunk])
        return f"Queue.enqueue_many, {CHUNK} per call"

    def close(self) -> None:
        self.connection.close()
