"""Celery's tools on a celeriac worker: with ``wire_format = "celery"`` the worker's events
also go to Celery's ``celeryev`` exchange (RabbitMQ) or pub/sub channels (kombu's Redis
layout), and it answers remote control sent through Celery's ``celery.pidbox``. So Flower
2.2 lists the worker, its heartbeats and task counts, shows its tasks with their states
and renders its worker page, and ``celery inspect``/``celery control`` reach it, as for a
Celery worker.

Flower runs from a virtualenv of its own: the Celery one (``CELERIAC_CELERY_VENV``) when it
has Flower, else ``bench/.venvs/flower``, made on first use from PyPI.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bench import venvs

from tests.integration.celery_peer import CELERY_PYTHON, delete_keys, imported_as_celeriac
from tests.integration.conftest import free_port
from tests.integration.workers import ROOT, WorkerProcess

pytestmark = pytest.mark.requires_service("rabbitmq")

PROJECT = textwrap.dedent(
    """
    import os

    if os.environ["INTEROP_SIDE"] == "celery":
        from celery import Celery
    else:
        from celeriac import Celery

    BROKER = os.environ["MONITOR_BROKER"]
    options = {"global_keyprefix": os.environ["MONITOR_PREFIX"]} if "redis" in BROKER else {}
    app = Celery(
        "monitored", broker=BROKER, backend=os.environ["MONITOR_RESULTS"],
        broker_transport_options=options,
        result_backend_transport_options={"global_keyprefix": os.environ["MONITOR_PREFIX"]},
        task_default_queue=os.environ["MONITOR_QUEUE"],
    )
    if os.environ["INTEROP_SIDE"] == "celeriac":
        app.conf.wire_format = "celery"


    @app.task(name="monitored.add")
    def add(x, y):
        return x + y


    # acks_late: while it runs, a worker with prefetch 1 takes nothing more, so what is
    # sent behind it waits in the queue (where a revoke sent meanwhile finds it).
    @app.task(name="monitored.hold", acks_late=True)
    def hold(seconds):
        import time

        time.sleep(seconds)
        return seconds
    """
)


def flower_python() -> str:
    """A Python with Flower and Celery."""
    if CELERY_PYTHON.exists():
        found = subprocess.run([str(CELERY_PYTHON), "-c", "import flower"], capture_output=True)
        if found.returncode == 0:
            return str(CELERY_PYTHON)
    return venvs.ensure("flower")


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def get_json(url: str) -> Any:
    return json.loads(get(url))


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Ask Flower again until ``check`` returns something true (Flower is another process:
    its HTTP API is the only way to know what it has seen)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = check()
        except (urllib.error.URLError, ConnectionError):
            found = None
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not show within {timeout:.0f} s")
        time.sleep(0.2)


@pytest.fixture(params=["rabbitmq", "kombu-redis"])
def monitored(
    request: pytest.FixtureRequest, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, Any]]:
    """The project on disk and the environment of each side, on one broker."""
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}:"
    if request.param == "rabbitmq":
        amqp_url = request.getfixturevalue("amqp_url")
        brokers = {"celery": amqp_url, "celeriac": amqp_url}
    else:
        brokers = {"celery": redis_url, "celeriac": f"kombu+{redis_url}"}
    (tmp_path / "monitored.py").write_text(PROJECT)
    common = {
        **os.environ, "PYTHONUNBUFFERED": "1", "MONITOR_PREFIX": prefix,
        "MONITOR_RESULTS": redis_url, "MONITOR_QUEUE": f"monitored-{uuid.uuid4().hex[:8]}",
    }  # fmt: skip
    paths = os.pathsep.join([str(ROOT / "src"), str(ROOT), str(tmp_path)])
    try:
        yield {
            "path": tmp_path,
            "celery": {**common, "INTEROP_SIDE": "celery", "MONITOR_BROKER": brokers["celery"],
                       "PYTHONPATH": str(tmp_path), "FLOWER_UNAUTHENTICATED_API": "1"},
            "celeriac": {**common, "INTEROP_SIDE": "celeriac",
                         "MONITOR_BROKER": brokers["celeriac"], "PYTHONPATH": paths},
        }  # fmt: skip
    finally:
        delete_keys(redis_url, prefix)


@pytest.fixture
def flower(monitored: dict[str, Any]) -> Iterator[str]:
    """Flower on a spare port, watching the broker; its base URL once it answers."""
    port = free_port()
    process = subprocess.Popen(
        [flower_python(), "-m", "celery", "-A", "monitored", "flower",
         f"--port={port}", "--address=127.0.0.1",
         "--inspect_timeout=10000"],  # (ms; 1 s by default: short on a loaded machine)
        cwd=monitored["path"], env=monitored["celery"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for("its health check", lambda: get(f"{base}/healthcheck") == b"OK")
        yield base
    finally:
        process.terminate()
        try:
            out, _ = process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            out, _ = process.communicate()
        sys.stdout.write(out[-4000:])


def test_flower_lists_a_celeriac_worker_and_counts_its_tasks(
    monitored: dict[str, Any], flower: str
) -> None:
    hostname = f"watched-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    worker = WorkerProcess.started(
        monitored["path"], monitored["celeriac"], "-E", "-P", "threads", "-c", "2",
        "-n", hostname, app="monitored",
    )  # fmt: skip
    try:

        def listed() -> dict[str, Any] | None:
            rows = get_json(f"{flower}/workers?json=1")["data"]
            return next((row for row in rows if row["hostname"] == hostname), None)

        # Heartbeats reach Flower before any task is sent: it is listening.
        row = wait_for(f"worker {hostname}", listed)
        assert row["status"] is True  # alive by its heartbeats
        assert row["sw_ident"] == "py-celeriac"

        with imported(monitored, "celeriac") as project:
            results = [project.add.delay(n, n) for n in range(3)]
            assert [r.get(timeout=20) for r in results] == [0, 2, 4]

        # Task events count at once; ``processed`` comes with the next heartbeat.
        counted = wait_for(
            "three succeeded tasks, then a heartbeat counting them",
            lambda: (found := listed()) and found.get("processed") == 3 and found,
        )
        assert counted["task-succeeded"] == 3
        assert counted["task-received"] == 3 and counted["task-started"] == 3

        tasks = get_json(f"{flower}/api/tasks")
        for result in results:
            shown = tasks[result.id]
            assert shown["state"] == "SUCCESS"
            assert shown["name"] == "monitored.add"
            assert shown["worker"] == hostname

        # The worker page asks the worker itself (stats, queues, ...) by remote control.
        page = get(f"{flower}/worker/{hostname}").decode()
        assert hostname in page and "Threads" in page
    finally:
        worker.stop()


def celery_cli(monitored: dict[str, Any], *args: str) -> Any:
    """Run ``celery -A monitored <args> --json`` from the Celery side; its JSON output."""
    done = subprocess.run(
        [flower_python(), "-m", "celery", "-A", "monitored", *args, "--timeout", "10", "--json"],
        cwd=monitored["path"], env=monitored["celery"], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_celery_inspect_and_control_reach_a_celeriac_worker(monitored: dict[str, Any]) -> None:
    hostname = f"steered-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    worker = WorkerProcess.started(
        monitored["path"], monitored["celeriac"], "-P", "threads", "-c", "2",
        "-n", hostname, app="monitored",
    )  # fmt: skip
    steer = textwrap.dedent(
        """
        import json, sys
        import monitored as p

        host, extra, nobody = sys.argv[1:]
        inspect = p.app.control.inspect(destination=[host], timeout=10)
        found = {"registered": inspect.registered(), "stats": inspect.stats()}
        found["added"] = p.app.control.add_consumer(extra, destination=[host], reply=True)
        found["queues"] = inspect.active_queues()
        found["elsewhere"] = p.app.control.inspect(destination=[nobody], timeout=1).ping()
        print(json.dumps(found))
        """
    )
    try:
        # Celery's command line (one start of it: seconds each), then its API.
        assert celery_cli(monitored, "inspect", "ping", "-d", hostname) == {
            hostname: {"ok": "pong"}
        }
        extra = f"extra-{uuid.uuid4().hex[:6]}"
        done = subprocess.run(
            [flower_python(), "-c", steer, hostname, extra, f"nobody@{socket.gethostname()}"],
            cwd=monitored["path"], env=monitored["celery"], capture_output=True, text=True,
            timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        found = json.loads(done.stdout.strip().splitlines()[-1])
        assert found["registered"] == {hostname: ["monitored.add", "monitored.hold"]}
        assert found["stats"][hostname]["pool"]["max-concurrency"] == 2
        # A command that changes the worker: it consumes one more queue from then on.
        assert found["added"] == [{hostname: {"ok": f"add consumer {extra}"}}]
        assert extra in {queue["name"] for queue in found["queues"][hostname]}
        assert found["elsewhere"] is None  # addressed to another node: no reply from it
    finally:
        worker.stop()


@contextlib.contextmanager
def celery_worker(monitored: dict[str, Any]) -> Iterator[subprocess.Popen[str]]:
    """A Celery worker with one thread on the project's queue, ready (threads: its consumer
    takes control messages while a task runs, as a prefork worker's does)."""
    queue = monitored["celery"]["MONITOR_QUEUE"]
    process = subprocess.Popen(
        [flower_python(), "-m", "celery", "-A", "monitored", "worker", "-P", "threads", "-c", "1",
         "-Q", queue,
         "-l", "info", "--without-gossip", "--without-mingle", "--prefetch-multiplier", "1"],
        cwd=monitored["path"], env=monitored["celery"], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    log: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            log.append(line)
            if " ready." in line:
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not ready.wait(60) or process.poll() is not None:
            raise AssertionError("the Celery worker did not start:\n" + "".join(log))
        yield process
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(10)  # (it ends with the process's output)
        assert process.stdout is not None
        process.stdout.close()
        sys.stdout.write("".join(log)[-4000:])


def imported(monitored: dict[str, Any], side: str) -> contextlib.AbstractContextManager[Any]:
    """The project imported in this process as celeriac's side."""
    settings = {k: v for k, v in monitored[side].items() if k.startswith("MONITOR_")}
    return imported_as_celeriac(monitored["path"], "monitored", settings)


def test_a_celeriac_revoke_stops_the_task_on_a_celery_worker(monitored: dict[str, Any]) -> None:
    """The revoke reaches the Celery worker through Celery's mailbox while the task waits
    in the queue behind another: the worker drops it when it comes and records it revoked."""
    with celery_worker(monitored), imported(monitored, "celeriac") as project:
        busy = project.hold.delay(1.5)
        target = project.add.delay(1, 1)
        target.revoke()
        assert busy.get(timeout=30) == 1.5
        wait_for("the task recorded revoked", lambda: target.state == "REVOKED", timeout=30)


def test_a_celery_revoke_stops_the_task_on_a_celeriac_worker(monitored: dict[str, Any]) -> None:
    hostname = f"revoked-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    worker = WorkerProcess.started(
        monitored["path"], monitored["celeriac"], "-P", "solo", "-n", hostname, app="monitored"
    )
    revoke = textwrap.dedent(
        """
        import json, sys
        import monitored as p

        busy = p.hold.delay(1.5)
        target = p.add.delay(1, 1)
        p.app.control.revoke(target.id)
        assert busy.get(timeout=30) == 1.5
        print(json.dumps({"id": target.id}))
        """
    )
    try:
        done = subprocess.run(
            [flower_python(), "-c", revoke], cwd=monitored["path"], env=monitored["celery"],
            capture_output=True, text=True, timeout=90,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        target_id = json.loads(done.stdout.strip().splitlines()[-1])["id"]
        with imported(monitored, "celeriac") as project:
            target = project.app.AsyncResult(target_id)
            wait_for("the task recorded revoked", lambda: target.state == "REVOKED", timeout=30)
    finally:
        worker.stop()


def test_celery_prometheus_exporter_counts_a_celeriac_worker_and_its_tasks(
    monitored: dict[str, Any],
) -> None:
    """celery-prometheus-exporter pings the workers through Celery's mailbox and counts
    tasks from Celery's events."""
    port = free_port()
    broker = monitored["celery"]["MONITOR_BROKER"]
    options = {"global_keyprefix": monitored["celery"]["MONITOR_PREFIX"]}
    python = Path(venvs.ensure("celery-exporter"))
    exporter = subprocess.Popen(
        [str(python.parent / "celery-prometheus-exporter"), "--broker", broker,
         "--addr", f"127.0.0.1:{port}",
         *(["--transport-options", json.dumps(options)] if "redis" in broker else [])],
        cwd=monitored["path"], env=monitored["celery"], stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    try:

        def metric(line_start: str) -> float | None:
            text = get(f"http://127.0.0.1:{port}/metrics").decode()
            found = [ln for ln in text.splitlines() if ln.startswith(line_start)]
            return float(found[0].rsplit(" ", 1)[1]) if found else None

        worker = WorkerProcess.started(
            monitored["path"], monitored["celeriac"], "-E", "-P", "threads", "-c", "2",
            app="monitored",
        )  # fmt: skip
        # Its ping reached the worker: it is connected, and listening for events.
        wait_for("one worker", lambda: metric("celery_workers ") == 1.0, timeout=60)
        with imported(monitored, "celeriac") as project:
            results = [project.add.delay(n, 1) for n in range(3)]
            assert [r.get(timeout=20) for r in results] == [1, 2, 3]
        succeeded = 'celery_tasks_by_name{name="monitored.add",state="SUCCESS"} '
        wait_for("three succeeded tasks", lambda: metric(succeeded) == 3.0)
    finally:
        if worker is not None:
            worker.stop()
        exporter.terminate()
        exporter.wait(20)
