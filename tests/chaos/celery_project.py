"""The Celery project the chaos harness runs Celery's own workers on
(``celery -A tests.chaos.celery_project worker``), and the sender the harness sends through
(``python -m tests.chaos.celery_project``). Both run in the Celery virtualenv
(``bench/.venvs/celery``), never in celeriac's: nothing of celeriac is imported here.

The task is ``tests/chaos/chaos_app.py``'s: sleep, then record the run (task id, delivery
attempt, worker, start and end) in the records store that no fault touches. Celery keeps no
delivery count on Redis, so the attempt is 2 when the message comes back ``redelivered``
(Kombu marks a message it restores after its visibility timeout, or requeues on a lost
worker; RabbitMQ marks a message it delivers again) and 1 otherwise.

Every setting comes from the environment the harness gives each process:
``CHAOS_BROKER``, ``CHAOS_RECORDS``, ``CHAOS_PREFIX``, ``CHAOS_KIND`` ("redis" or
"rabbitmq"), ``CHAOS_LEASE`` (seconds), ``CHAOS_QUEUE_TYPE`` ("classic" or "quorum") and
``CHAOS_SETTINGS`` (more settings, JSON).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

import redis
from celery import Celery, __version__  # type: ignore[import-not-found]  # its venv only
from kombu import Exchange, Queue  # type: ignore[import-not-found]

TASK = "chaos.record"


def broker_settings(kind: str, prefix: str, lease: float, queue_type: str) -> dict[str, Any]:
    """How Celery is told what celeriac's chaos app is told: a short lease on Redis, quick
    heartbeats on RabbitMQ, quorum queues when the broker has them."""
    if kind == "redis":
        return {
            "broker_transport_options": {
                "visibility_timeout": lease,
                "global_keyprefix": f"{prefix}:",
                # Kombu sweeps the unacked messages whose visibility timeout has passed
                # every 10 x 10 s by default; its documentation says to lower both for a
                # short timeout, so that an expired message is restored within a second.
                "unacked_restore_interval": 1,
                "unacked_restore_throttle": 1,
            },
        }
    settings: dict[str, Any] = {
        # A frozen worker's connection is closed (and its messages redelivered) after about
        # two missed heartbeats, as for celeriac.
        "broker_heartbeat": max(1, int(lease / 2)),
        # The publish returns once the broker has the message, so a send that returned is
        # one the broker took (Celery's RabbitMQ guide asks for it with quorum queues).
        "broker_transport_options": {"confirm_publish": True},
    }
    if queue_type == "quorum":
        # Celery's RabbitMQ guide: a quorum queue, and a topic exchange so that a countdown
        # goes through RabbitMQ's native delayed delivery (which Celery sets up when it
        # detects a quorum queue) instead of waiting in the worker, whose prefetch is fixed.
        exchange = Exchange("celery", type="topic")
        settings |= {
            "task_queues": [Queue("celery", exchange, routing_key="celery",
                                  queue_arguments={"x-queue-type": "quorum"})],
            "task_default_exchange_type": "topic",
            "worker_detect_quorum_queues": True,
        }  # fmt: skip
    return settings


def make_app(broker: str, records: str, prefix: str, kind: str, lease: float,
             queue_type: str, settings: dict[str, Any]) -> Celery:  # fmt: skip
    """The same settings for the workers and for the sender."""
    app = Celery("chaos", broker=broker, backend=records)
    app.conf.update(
        # At-least-once: ack after the run, and requeue what a lost worker process held.
        task_acks_late=True, task_reject_on_worker_lost=True,
        result_backend_transport_options={"global_keyprefix": f"{prefix}:"},
        broker_connection_retry_on_startup=True,
        **broker_settings(kind, prefix, lease, queue_type), **settings,
    )  # fmt: skip
    store = redis.Redis.from_url(records)

    @app.task(bind=True, name=TASK)  # type: ignore[untyped-decorator]
    def record(self: Any, seconds: float) -> float:
        started = time.time()
        time.sleep(seconds)  # the task's work: long enough for a fault to land mid-run
        request = self.request
        redelivered = bool((request.delivery_info or {}).get("redelivered"))
        run = {"id": request.id, "attempt": 2 if redelivered else 1,
               "pid": os.getpid(), "hostname": request.hostname,
               "started": started, "finished": time.time()}  # fmt: skip
        store.rpush(f"{prefix}:runs", json.dumps(run))
        store.rpush(f"{prefix}:done", "1")  # wakes the harness waiting for quiescence
        return started

    return app


def app_from_environment() -> Celery:
    env = os.environ
    return make_app(
        env["CHAOS_BROKER"], env["CHAOS_RECORDS"], env["CHAOS_PREFIX"], env["CHAOS_KIND"],
        float(env["CHAOS_LEASE"]), env["CHAOS_QUEUE_TYPE"], json.loads(env["CHAOS_SETTINGS"]),
    )  # fmt: skip


def serve_sends(app: Celery) -> None:
    """The sender: one JSON request a line on stdin (``{"id", "seconds", "countdown"}``),
    one answer a line on stdout (``{"ok": true}`` once ``apply_async`` returned, or
    ``{"error": "..."}`` with what it raised). The first line out is
    ``{"ready": "<Celery's version>"}``."""
    task = app.tasks[TASK]
    print(json.dumps({"ready": __version__}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            task.apply_async((request["seconds"],), task_id=request["id"],
                             countdown=request["countdown"])  # fmt: skip
        except Exception as exc:  # the caller saw the send fail: it is not confirmed
            answer: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            answer = {"ok": True}
        print(json.dumps(answer), flush=True)


if "CHAOS_PREFIX" in os.environ:  # a worker or the sender: the harness set it up
    app = app_from_environment()

if __name__ == "__main__":
    serve_sends(app)
