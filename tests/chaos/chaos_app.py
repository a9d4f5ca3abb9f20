"""The celeriac project the chaos workers run (``-A tests.chaos.chaos_app``): a task that
records each execution it finishes (task id, delivery attempt, worker, start and end) in a
records store that no fault touches, as a plain function and as a coroutine (the asyncio
pool's)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import redis

from celeriac import Celery

TASK = "chaos.record"
ASYNC_TASK = "chaos.record_async"


def transport_options(kind: str, prefix: str, lease: float, queue_type: str) -> dict[str, Any]:
    """The broker's options: a short lease so that faults heal within seconds."""
    if kind == "rabbitmq":
        # A frozen worker's connection is closed (and its messages redelivered) after about
        # two missed heartbeats.
        return {"heartbeat": max(1, int(lease / 2)), "queue_type": queue_type}
    return {"key_prefix": prefix, "visibility_timeout": lease}


def extra_settings(kind: str, delay_queue_type: str | None) -> dict[str, Any]:
    """RabbitMQ keeps no idempotency keys: the worker skips a redelivered task that already
    succeeded (its result is in the records store) instead."""
    if kind != "rabbitmq":
        return {}
    extra: dict[str, Any] = {"worker_deduplicate_successful_tasks": True}
    if delay_queue_type:
        extra["broker_native_delayed_delivery_queue_type"] = delay_queue_type
    return extra


def make_app(broker: str, records: str, prefix: str, options: dict[str, Any],
             settings: dict[str, Any]) -> Celery:  # fmt: skip
    """The same settings for the workers and for the process that sends."""
    app = Celery(
        "chaos", broker=broker, backend=records,
        broker_transport_options=options,
        result_backend_transport_options={"key_prefix": prefix},
        # At-least-once: ack after the run, and redeliver what a dead worker held.
        task_acks_late=True, task_reject_on_worker_lost=True, task_delivery_limit=10,
        **settings,
    )  # fmt: skip
    store = redis.Redis.from_url(records)

    def finish(request: Any, started: float) -> float:
        run = {"id": request.id, "attempt": request.delivery_count,
               "pid": os.getpid(), "hostname": request.hostname,
               "started": started, "finished": time.time()}  # fmt: skip
        store.rpush(f"{prefix}:runs", json.dumps(run))
        store.rpush(f"{prefix}:done", "1")  # wakes the harness waiting for quiescence
        return started

    @app.task(bind=True, name=TASK)
    def record(self, seconds: float) -> float:  # type: ignore[no-untyped-def]
        started = time.time()
        time.sleep(seconds)  # the task's work: long enough for a fault to land mid-run
        return finish(self.request, started)

    @app.task(bind=True, name=ASYNC_TASK)
    async def record_async(self, seconds: float) -> float:  # type: ignore[no-untyped-def]
        started = time.time()
        await asyncio.sleep(seconds)
        return finish(self.request, started)  # (a local Redis: a blocking write is brief)

    return app


if "CHAOS_PREFIX" in os.environ:  # a worker process: its settings come from the harness
    app = make_app(
        os.environ["CHAOS_BROKER"], os.environ["CHAOS_RECORDS"], os.environ["CHAOS_PREFIX"],
        json.loads(os.environ["CHAOS_OPTIONS"]), json.loads(os.environ["CHAOS_SETTINGS"]),
    )  # fmt: skip
