"""A task raising ``WorkerShutdown`` stops its worker warm (running tasks finish), one
raising ``WorkerTerminate`` stops it cold (running tasks are given back), as in Celery;
the worker exits with the exception's code. Real worker processes on Redis."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import redis

from celeriac import Celery
from celeriac.exceptions import WorkerShutdown
from tests.integration.workers import WorkerProcess, project_env

TASKS = textwrap.dedent(
    """
    from celeriac.exceptions import WorkerShutdown, WorkerTerminate


    @app.task
    def stop_warm():
        raise WorkerShutdown()


    @app.task
    def stop_cold(code):
        raise WorkerTerminate(code)
    """
)


def _worker(tmp_path: Path, redis_url: str, prefix: str, *args: str) -> WorkerProcess:
    env = project_env(tmp_path, redis_url, prefix)
    with (tmp_path / "proj.py").open("a") as project:
        project.write(TASKS)
    return WorkerProcess.started(tmp_path, env, *args)


def _client(redis_url: str, prefix: str) -> Celery:
    return Celery(
        "proj", broker=redis_url, backend=redis_url, set_as_current=False,
        broker_transport_options={"key_prefix": prefix},
        result_backend_transport_options={"key_prefix": prefix},
    )  # fmt: skip


def _wait_started(redis_url: str, prefix: str) -> None:
    with redis.Redis.from_url(redis_url) as marks:
        assert marks.blpop([f"{prefix}:events:started"], timeout=20) is not None


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_worker_shutdown_from_a_task_is_a_warm_shutdown(
    tmp_path: Path, redis_url: str, redis_prefix: str, pool: str
) -> None:
    worker = _worker(tmp_path, redis_url, redis_prefix, "-P", pool, "-c", "2")
    client = _client(redis_url, redis_prefix)
    try:
        running = client.send_task("proj.slow", ("job", 1.0))
        _wait_started(redis_url, redis_prefix)
        stopper = client.send_task("proj.stop_warm")
        assert worker.wait(timeout=30) == 0, worker.text
        assert "raised WorkerShutdown: warm shutdown" in worker.text
        assert running.get(timeout=5) == "job"  # the running task finished first
        assert stopper.state == "PENDING"  # nothing recorded, as in Celery
        assert client.broker.queue_length("celery") == 0  # its message was acked
    finally:
        worker.stop()
        client.close()


def test_worker_terminate_from_a_task_is_a_cold_shutdown_with_its_code(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    worker = _worker(tmp_path, redis_url, redis_prefix, "-P", "threads", "-c", "2")
    client = _client(redis_url, redis_prefix)
    try:
        client.send_task("proj.slow", ("long", 30))
        _wait_started(redis_url, redis_prefix)
        client.send_task("proj.stop_cold", (3,))
        assert worker.wait(timeout=20) == 3, worker.text
        assert "raised WorkerTerminate: cold shutdown" in worker.text
        assert client.broker.queue_length("celery") == 1  # the long task was given back
    finally:
        worker.stop()
        client.close()


def test_apply_raises_it_to_the_caller() -> None:
    app = Celery("p", broker="memory://", set_as_current=False)

    @app.task
    def stop() -> None:
        raise WorkerShutdown(2)

    with pytest.raises(WorkerShutdown) as raised:
        stop.apply()
    assert raised.value.code == 2
