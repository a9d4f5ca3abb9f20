"""The celeriac project the chaos workers run (``-A tests.chaos.chaos_app``): one task that
records each execution it finishes (task id, delivery attempt, worker, start and end) in a
records store that no fault touches."""

from __future__ import annotations

import json
import os
import time

import redis

from celeriac import Celery

TASK = "chaos.record"


def make_app(broker: str, records: str, prefix: str, lease: float) -> Celery:
    """The same settings for the workers and for the process that sends."""
    app = Celery(
        "chaos", broker=broker, backend=records,
        broker_transport_options={"key_prefix": prefix, "visibility_timeout": lease},
        result_backend_transport_options={"key_prefix": prefix},
        # At-least-once: ack after the run, and redeliver what a dead worker held.
        task_acks_late=True, task_reject_on_worker_lost=True, task_delivery_limit=10,
    )  # fmt: skip
    store = redis.Redis.from_url(records)

    @app.task(bind=True, name=TASK)
    def record(self, seconds: float) -> float:  # type: ignore[no-untyped-def]
        started = time.time()
        time.sleep(seconds)  # the task's work: long enough for a fault to land mid-run
        run = {"id": self.request.id, "attempt": self.request.delivery_count,
               "pid": os.getpid(), "hostname": self.request.hostname,
               "started": started, "finished": time.time()}  # fmt: skip
        store.rpush(f"{prefix}:runs", json.dumps(run))
        store.rpush(f"{prefix}:done", "1")  # wakes the harness waiting for quiescence
        return started

    return app


if "CHAOS_PREFIX" in os.environ:  # a worker process: its settings come from the harness
    app = make_app(
        os.environ["CHAOS_BROKER"], os.environ["CHAOS_RECORDS"], os.environ["CHAOS_PREFIX"],
        float(os.environ["CHAOS_LEASE"]),
    )  # fmt: skip
