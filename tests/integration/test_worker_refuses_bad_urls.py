"""``celeriac -A proj worker`` with a result backend no engine serves: the process stops at
start with one line and EX_CONFIG, and leaves the queued work where it was."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from celeriac import Celery
from celeriac.worker.exitcodes import EX_CONFIG
from tests.integration.workers import ROOT

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    app = Celery(
        "proj", broker=os.environ["BROKER"], backend="amqp://",
        broker_transport_options={"key_prefix": os.environ["PREFIX"]},
    )


    @app.task
    def add(x, y):
        return x + y
    """
)


def test_a_worker_with_celery4s_amqp_backend_exits_at_start_with_one_line(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    (tmp_path / "proj.py").write_text(PROJECT)
    producer = Celery(
        "proj", broker=redis_url, broker_transport_options={"key_prefix": redis_prefix},
        set_as_current=False,
    )  # fmt: skip
    try:
        producer.send_task("proj.add", (2, 3))  # queued before the worker starts
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", "worker", "-l", "info"],
            cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False,
            env={**os.environ, "BROKER": redis_url, "PREFIX": redis_prefix,
                 "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])},
        )  # fmt: skip
        output = (done.stdout + done.stderr).strip()
        assert done.returncode == EX_CONFIG, output
        [line] = output.splitlines()
        assert line.startswith("Error: result_backend has scheme 'amqp': the amqp result")
        assert "result_backend='rpc://'" in line
        assert producer.broker.queue_length("celery") == 1  # not taken, so not lost
    finally:
        producer.close()
