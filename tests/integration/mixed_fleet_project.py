"""The project a mixed fleet runs: Celery's workers (``celery -A
tests.integration.mixed_fleet_project worker``, in the Celery virtualenv) and celeriac's
(``celeriac -A tests.integration.mixed_fleet_project worker``) on one queue, with the
settings a Celery user picks for safety on either side. ``INTEROP_SIDE`` says which library
this process imports; nothing else of the test suite is imported, so it runs in either
virtualenv.

Run as ``python -m tests.integration.mixed_fleet_project send FILE`` it is Celery's (or
celeriac's) producer: it sends one task per task id in ``FILE`` and prints the ids whose send
raised, as JSON.

Settings, from the environment: ``FLEET_BROKER`` (``redis://...`` or ``amqp://...``),
``FLEET_RECORDS`` (the Redis that holds the runs: ``<prefix>runs``, ``<prefix>ran``,
``<prefix>finished``), ``FLEET_PREFIX`` (every key's prefix: kombu's ``global_keyprefix``
on Redis, the records' too) and ``FLEET_LEASE`` (seconds:
kombu's ``visibility_timeout`` and celeriac's lease on Redis).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import redis

SIDE = os.environ["INTEROP_SIDE"]
if SIDE == "celery":
    from celery import Celery  # type: ignore[import-not-found]  # the Celery virtualenv's
else:
    from celeriac import Celery

TASK = "fleet.record"
BROKER = os.environ["FLEET_BROKER"]
PREFIX = os.environ["FLEET_PREFIX"]
LEASE = float(os.environ["FLEET_LEASE"])
ON_REDIS = BROKER.startswith("redis")


def broker_settings() -> dict[str, Any]:
    """The broker's half of the settings, the same for both kinds of worker."""
    if not ON_REDIS:
        # A send returns once RabbitMQ has the message (celeriac always waits for it).
        return {"broker_transport_options": {"confirm_publish": True}} if SIDE == "celery" else {}
    # A worker killed while it restores expired entries keeps kombu's unacked_mutex, and
    # so every restore, kombu's and celeriac's, waits until the mutex expires: 300 s by
    # default, longer than the test waits. Both sides hold it for a lease at most here.
    options: dict[str, Any] = {"global_keyprefix": PREFIX, "visibility_timeout": LEASE,
                               "unacked_mutex_expire": max(1, round(LEASE))}  # fmt: skip
    if SIDE == "celery":
        # Kombu looks for expired unacked messages every 10 x 10 s by default; its
        # documentation says to lower both for a short visibility timeout.
        options |= {"unacked_restore_interval": 1, "unacked_restore_throttle": 1}
    return {"broker_transport_options": options}


app = Celery(
    "fleet",
    broker=("kombu+" + BROKER) if ON_REDIS and SIDE == "celeriac" else BROKER,
    # At-least-once, as Celery's documentation advises: acknowledge after the run, give
    # back what a lost worker process held, and hold one message per pool slot.
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    broker_connection_retry_on_startup=True,
    **({"wire_format": "celery"} if SIDE == "celeriac" else {}),
    **broker_settings(),
)
records = redis.Redis.from_url(os.environ["FLEET_RECORDS"])


@app.task(bind=True, name=TASK)
def record(self: Any, seconds: float) -> None:
    """Record the run as it starts (whatever it did before a kill counts as a run), do
    the work, then record that it finished."""
    task_id = self.request.id
    run = {"id": task_id, "node": self.request.hostname, "started": time.time()}
    with records.pipeline(transaction=False) as pipe:
        pipe.rpush(f"{PREFIX}runs", json.dumps(run)).sadd(f"{PREFIX}ran", task_id).execute()
    time.sleep(seconds)  # the task's work: long enough for a kill to land mid-run
    records.rpush(f"{PREFIX}finished", task_id)


def send(path: str, seconds: float) -> dict[str, Any]:
    """One task per id in ``path``; the ids whose send raised, and the first error."""
    failed: list[str] = []
    error = None
    with open(path) as ids:
        for task_id in ids.read().split():
            try:
                record.apply_async((seconds,), task_id=task_id)
            except Exception as exc:  # the caller saw the send fail: it is not sent
                failed.append(task_id)
                error = error or f"{type(exc).__name__}: {exc}"
    if SIDE == "celeriac":
        app.broker.flush()  # RabbitMQ confirmed every publish
    return {"failed": failed, "error": error}


if __name__ == "__main__":
    _, step, ids, seconds = sys.argv
    assert step == "send", f"unknown step {step!r}: the one step is `send FILE SECONDS`"
    print(json.dumps(send(ids, float(seconds))), flush=True)
