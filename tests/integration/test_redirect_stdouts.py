"""What a task prints is logged by the worker (``worker_redirect_stdouts``), in every
pool, at ``worker_redirect_stdouts_level``; a real worker started from the CLI."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.workers import WorkerProcess, project_env

PRINTER = textwrap.dedent(
    """
    import os, sys

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "printer", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    if "REDIRECT" in os.environ:
        app.conf.worker_redirect_stdouts = os.environ["REDIRECT"] == "on"
    if "LEVEL" in os.environ:
        app.conf.worker_redirect_stdouts_level = os.environ["LEVEL"]


    @app.task
    def chatty(token):
        print(f"out-{token}")
        print(f"err-{token}", file=sys.stderr)
        return token


    @app.task
    async def async_chatty(token):
        print(f"out-{token}")
        return token
    """
)


@pytest.fixture
def project(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[Path]:
    project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "printer.py").write_text(PRINTER)
    yield tmp_path


def _run(project: Path, env: dict[str, str], task: str, *args: str) -> tuple[str, str]:
    """Start a worker, run one call of ``task``; the token printed and the worker's log."""
    client = Celery(
        "client", broker=env["CELERIAC_TEST_REDIS"], backend=env["CELERIAC_TEST_REDIS"],
        set_as_current=False,
        broker_transport_options={"key_prefix": env["CELERIAC_TEST_PREFIX"]},
        result_backend_transport_options={"key_prefix": env["CELERIAC_TEST_PREFIX"]},
    )  # fmt: skip
    token = uuid.uuid4().hex[:8]
    worker = WorkerProcess.started(project, env, *args, app="printer")
    try:
        assert client.send_task(f"printer.{task}", (token,)).get(timeout=20) == token
        worker.wait_for_log(f"out-{token}")
    finally:
        worker.stop()
        client.broker.close()
    return token, worker.text


def _line(log: str, text: str) -> str:
    return next(line for line in log.splitlines() if text in line)


@pytest.mark.parametrize("pool", ["prefork", "threads", "solo"])
def test_prints_are_logged_at_warning_by_default_in_every_pool(
    project: Path, redis_url: str, redis_prefix: str, pool: str
) -> None:
    # Given a worker with Celery's defaults, when a task prints to stdout and stderr
    env = project_env(project, redis_url, redis_prefix)
    token, log = _run(project, env, "chatty", "-P", pool, "-c", "1")
    # Then both lines are log records at WARNING, formatted as the worker's log lines
    assert "WARNING/" in _line(log, f"out-{token}")
    assert "WARNING/" in _line(log, f"err-{token}")


def test_an_async_task_on_the_asyncio_pool_prints_into_the_log(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    env = project_env(project, redis_url, redis_prefix)
    token, log = _run(project, env, "async_chatty", "-P", "asyncio")
    assert "WARNING/" in _line(log, f"out-{token}")


def test_the_level_follows_worker_redirect_stdouts_level(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {**project_env(project, redis_url, redis_prefix), "LEVEL": "error"}
    token, log = _run(project, env, "chatty", "-P", "prefork", "-c", "1")
    assert "ERROR/" in _line(log, f"out-{token}")


def test_turned_off_prints_go_to_the_streams_unchanged(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {**project_env(project, redis_url, redis_prefix), "REDIRECT": "off"}
    token, log = _run(project, env, "chatty", "-P", "solo")
    assert _line(log, f"out-{token}") == f"out-{token}"
    assert f"err-{token}\n" in log.splitlines(keepends=True)


def test_an_unknown_level_stops_the_worker_with_the_settings_name(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {**project_env(project, redis_url, redis_prefix), "LEVEL": "loud"}
    worker = WorkerProcess(project, env, "-P", "solo", app="printer")
    worker.process.wait(30)
    assert worker.stop() != 0
    assert "worker_redirect_stdouts_level" in worker.text and "'loud'" in worker.text
