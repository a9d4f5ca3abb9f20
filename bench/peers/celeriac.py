"""celeriac: the app and tasks its worker loads, and the producer the harness drives.

Worker: ``celeriac -A bench.peers.celeriac worker -P <pool> -c <n> -Q <queue> -l warning``
with celeriac's defaults (acks late, prefetch multiplier 1, no result store); for an
experiment, ``BENCH_WORKER_ARGS`` adds options (``--prefetch-multiplier 4``). The
asyncio pool runs ``async def`` tasks (redis.asyncio for the instrument); threads and
prefork run plain functions.

Bulk enqueue: ``celeriac.group(...).apply_async()`` when celeriac has ``group``;
until then the broker's ``publish_many`` with messages built as the producer builds
them (an internal API, labelled so in the results); a loop of ``delay`` otherwise.
"""

from __future__ import annotations

import os
from typing import Any

import celeriac
from bench.peers import _common
from celeriac import Celeriac

SETTINGS = _common.SETTINGS
PACKAGES = ("celeriac", "redis", "hiredis")
CHUNK = 1000

# BENCH_RESULT_BACKEND (a URL) stores every result there; unset: no result store.
RESULT_BACKEND = os.environ.get("BENCH_RESULT_BACKEND") or None
# BENCH_QUEUE_MAX_PRIORITY=none: RabbitMQ queues without priority levels (Celery's default,
# and the other peers'); unset: celeriac's default (ten levels).
FIFO = os.environ.get("BENCH_QUEUE_MAX_PRIORITY") == "none"
app = Celeriac(
    "bench",
    broker=SETTINGS.broker_url,
    task_default_queue=SETTINGS.queue,
    task_ignore_result=RESULT_BACKEND is None,
    **({"result_backend": RESULT_BACKEND} if RESULT_BACKEND else {}),
    **({"result_expires": int(os.environ["BENCH_RESULT_EXPIRES"])}
       if os.environ.get("BENCH_RESULT_EXPIRES") else {}),
    **({"task_queue_max_priority": None} if FIFO else {}),
)  # fmt: skip
_bodies = _common.ASYNC if SETTINGS.pool == "asyncio" else _common.SYNC
TASKS = {kind: app.task(name=f"bench.{kind}")(body) for kind, body in _bodies.items()}


def describe() -> str:
    return (
        f"pool {SETTINGS.pool}, -c {SETTINGS.concurrency}, celeriac defaults "
        "(acks late, prefetch multiplier 1), "
        + (f"results in {RESULT_BACKEND}" if RESULT_BACKEND else "no result store")
        + (", queues without priority levels (task_queue_max_priority=None)" if FIFO else "")
    )


def worker_command(bindir: str) -> list[str]:
    return [
        os.path.join(bindir, "celeriac"),
        "-A",
        "bench.peers.celeriac",
        "worker",
        "-P",
        SETTINGS.pool,
        "-c",
        str(SETTINGS.concurrency),
        "-Q",
        SETTINGS.queue,
        "-l",
        "warning",
        *os.environ.get("BENCH_WORKER_ARGS", "").split(),
    ]


class Client:
    def flush(self) -> None:
        """Wait for the confirms still due (RabbitMQ's are pipelined behind the calls)."""
        app.broker.flush()

    def send(self, kind: str, args: list[Any]) -> None:
        delay = TASKS[kind].delay
        for arg in args:
            delay(arg)

    def send_bulk(self, kind: str, args: list[Any]) -> str | None:
        task = TASKS[kind]
        group = getattr(celeriac, "group", None)
        if group is not None:
            for start in range(0, len(args), CHUNK):
                group(task.s(arg) for arg in args[start : start + CHUNK]).apply_async()
            return f"group(...).apply_async(), {CHUNK} per group"
        publish_many = getattr(app.broker, "publish_many", None)
        if publish_many is not None:
            from celeriac.brokers.base import OutboundMessage
            from celeriac.messages.protocol import task_message

            name = task.name
            for start in range(0, len(args), CHUNK):
                batch = []
                for arg in args[start : start + CHUNK]:
                    task_id = celeriac.uuid()
                    message = task_message(
                        task_name=name, task_id=task_id, args=(arg,), ignore_result=True
                    )
                    batch.append(OutboundMessage(SETTINGS.queue, message.encode(), task_id))
                publish_many(batch)
            return f"broker.publish_many, {CHUNK} per call (internal API: no group yet)"
        self.send(kind, args)
        return "loop of delay (no bulk API)"

    def close(self) -> None:
        app.broker.close()
