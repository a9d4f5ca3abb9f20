"""Soft shutdown (``worker_soft_shutdown_timeout``, Celery 5.5) in a real prefork worker:
a cold shutdown first gives running tasks that many seconds, then gives them back."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import redis

from celeriac import Celery
from tests.integration.workers import WorkerProcess, project_env


def _client(redis_url: str, prefix: str) -> Celery:
    return Celery(
        "proj", broker=redis_url, backend=redis_url, set_as_current=False,
        broker_transport_options={"key_prefix": prefix},
        result_backend_transport_options={"key_prefix": prefix},
    )  # fmt: skip


def _cold_during(
    tmp_path: Path, redis_url: str, prefix: str, soft: float, seconds: float
) -> tuple[WorkerProcess, Celery, str, float]:
    """A worker runs ``slow`` for ``seconds``; SIGTERM (warm), then SIGTERM again (cold)."""
    env = project_env(tmp_path, redis_url, prefix)
    client = _client(redis_url, prefix)
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "prefork", "-c", "1", "--", f"worker_soft_shutdown_timeout={soft}"
    )
    result = client.send_task("proj.slow", ("job", seconds))
    with redis.Redis.from_url(redis_url) as marks:
        assert marks.blpop([f"{prefix}:events:started"], timeout=20) is not None
    worker.signal(signal.SIGTERM)
    worker.wait_for_log("warm shutdown")
    cold_at = time.monotonic()
    worker.signal(signal.SIGTERM)
    return worker, client, result.id, cold_at


def test_a_task_that_ends_within_the_soft_timeout_finishes(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    worker, client, task_id, _ = _cold_during(tmp_path, redis_url, redis_prefix, 20, 1.5)
    try:
        assert worker.wait(timeout=30) == 0, worker.text
    finally:
        worker.stop()
    try:
        assert "soft shutdown: running tasks get 20.0s" in worker.text
        assert client.AsyncResult(task_id).get(timeout=5) == "job"  # finished, not given back
        assert client.broker.queue_length("celery") == 0
    finally:
        client.broker.close()


def test_a_task_still_running_after_it_is_given_back(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    worker, client, task_id, cold_at = _cold_during(tmp_path, redis_url, redis_prefix, 0.5, 60)
    try:
        assert worker.wait(timeout=30) == 0, worker.text
        assert time.monotonic() - cold_at < 15
    finally:
        worker.stop()
    try:
        assert "soft shutdown: tasks still running after 0.5s" in worker.text
        assert client.broker.queue_length("celery") == 1  # given back for another worker
        assert client.AsyncResult(task_id).state == "PENDING"
    finally:
        client.broker.close()
