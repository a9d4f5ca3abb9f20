"""``task_remote_tracebacks`` with a real prefork worker: the caller's ``get()`` raises the
task's error with the frames of the worker's child where it was raised."""

from __future__ import annotations

import textwrap
import traceback
from pathlib import Path

import pytest

from celeriac import Celery
from tests.integration.workers import WorkerProcess, project_env

FAILING = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    URL = os.environ["CELERIAC_TEST_REDIS"]
    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    app = Celery(
        "failing", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )


    def check_inventory(count):
        if count < 0:
            raise ValueError(f"negative stock: {count}")


    @app.task
    def reserve(count):
        check_inventory(count)
    """
)


def test_get_raises_with_the_workers_frames(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "failing.py").write_text(FAILING)
    client = Celery(
        "client", broker=redis_url, backend=redis_url, set_as_current=False,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
        task_remote_tracebacks=True,
    )  # fmt: skip
    worker = WorkerProcess.started(tmp_path, env, "-P", "prefork", "-c", "1", app="failing")
    try:
        with pytest.raises(ValueError, match="negative stock: -1") as raised:
            client.send_task("failing.reserve", (-1,)).get(timeout=20)
    finally:
        worker.stop()
        client.broker.close()
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert [frame.name for frame in frames][-2:] == ["reserve", "check_inventory"]
    assert frames[-1].filename.endswith("failing.py")
