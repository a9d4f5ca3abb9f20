"""Worker signals fire once each, with Celery's sender and arguments, in a real worker
started from the CLI. The project's receivers describe every call in a Redis list (the
worker and its prefork child both write there); the test reads it after the worker ends.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import textwrap
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import Celery
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import TaskRevokedError
from tests.integration.workers import WorkerProcess, project_env

RECEIVERS = textwrap.dedent(
    """
    import json, logging, os, time

    import redis

    from celeriac import Celery, signals

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "sigproj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)


    def describe(value):
        if value is None or isinstance(value, (str, int, float, bool)):
            return value
        return type(value).__name__


    def record(signal=None, sender=None, **kwargs):
        entry = {"signal": signal.name, "sender": describe(sender), "pid": os.getpid(),
                 "args": sorted(kwargs),
                 "values": {key: describe(value) for key, value in kwargs.items()}}
        request = kwargs.get("request")
        if request is not None:
            entry["request_id"] = request.id
        if signal.name == "celeryd_init":
            entry["options"] = sorted(kwargs["options"])
        if signal.name in ("after_setup_logger", "after_setup_task_logger"):
            entry["logger"] = kwargs["logger"].name
        if signal.name == "task_success":
            entry["runtime_ok"] = kwargs["runtime"] >= 0
        marks.rpush(f"{PREFIX}:signals", json.dumps(entry))


    WATCHED = os.environ["WATCHED"].split(",")
    for name in WATCHED:
        getattr(signals, name).connect(record, weak=False)
    if "setup_logging" in WATCHED:  # whoever receives it configures logging: do it here
        logging.basicConfig(level=logging.INFO, format="%(message)s")


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def sleepy(seconds):
        marks.rpush(f"{PREFIX}:started", os.getpid())
        time.sleep(seconds)  # the task's own work, until a revoke stops it
    """
)

WORKER_SIGNALS = (
    "celeryd_init,worker_init,celeryd_after_setup,worker_ready,import_modules,"
    "after_setup_logger,after_setup_task_logger,worker_before_create_process,"
    "worker_process_init,worker_process_shutdown,task_received,task_unknown,"
    "task_rejected,task_success,worker_shutting_down,worker_shutdown"
)


@pytest.fixture
def project(tmp_path: Path, redis_url: str, redis_prefix: str) -> Iterator[Path]:
    project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "sigproj.py").write_text(RECEIVERS)
    yield tmp_path


def _env(project: Path, redis_url: str, prefix: str, watched: str) -> dict[str, str]:
    return {**project_env(project, redis_url, prefix), "WATCHED": watched}


def _calls(redis_url: str, prefix: str) -> list[dict[str, Any]]:
    with redis.Redis.from_url(redis_url) as client:
        return [json.loads(raw) for raw in client.lrange(f"{prefix}:signals", 0, -1)]


def _client(redis_url: str, prefix: str) -> Celery:
    return Celery(
        "client", broker=redis_url, backend=redis_url, set_as_current=False,
        broker_transport_options={"key_prefix": prefix},
        result_backend_transport_options={"key_prefix": prefix},
    )  # fmt: skip


def test_worker_signals_fire_once_with_celerys_senders_and_arguments(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    # Given a prefork worker with one child, whose project connects every worker signal
    env = _env(project, redis_url, redis_prefix, WORKER_SIGNALS)
    worker = WorkerProcess.started(project, env, "-P", "prefork", "-c", "1", app="sigproj")
    client = _client(redis_url, redis_prefix)
    try:
        # When it runs a task, meets an unknown task and a message that is not a task's,
        result = client.send_task("sigproj.add", (2, 3))
        assert result.get(timeout=20) == 5
        unknown = client.send_task("nobody.registered.this")
        client.broker.publish(OutboundMessage("celery", b"\x00not a task", uuid.uuid4().hex))
        worker.wait_for_log("dead-lettered (malformed)")
        # and is stopped with SIGTERM
        worker.signal(signal.SIGTERM)
        assert worker.wait() == 0, worker.text
    finally:
        worker.stop()
        client.broker.close()
        client.backend.close()
    calls = _calls(redis_url, redis_prefix)
    # Then each fired exactly once
    counts = Counter(call["signal"] for call in calls)
    assert counts == Counter(WORKER_SIGNALS.split(",")), counts
    by = {call["signal"]: call for call in calls}
    hostname = by["celeryd_init"]["sender"]
    assert hostname.startswith("celeriac@")
    main_pid = by["celeryd_init"]["pid"]
    # with the sender and the keyword arguments Celery gives
    expected = {
        "celeryd_init": (hostname, ["conf", "instance", "options"]),
        "import_modules": ("Celeriac", []),
        "worker_init": ("Worker", []),
        "celeryd_after_setup": (hostname, ["conf", "instance"]),
        "worker_ready": ("Consumer", []),
        "after_setup_logger": (None, ["colorize", "format", "logfile", "logger", "loglevel"]),
        "after_setup_task_logger": (
            None,
            ["colorize", "format", "logfile", "logger", "loglevel"],
        ),
        "worker_before_create_process": ("PreforkPool", []),
        "worker_process_init": (hostname, []),
        "worker_process_shutdown": (hostname, ["exitcode", "pid"]),
        "task_received": ("Consumer", ["request"]),
        "task_unknown": ("Consumer", ["exc", "id", "message", "name"]),
        "task_rejected": ("Consumer", ["exc", "message"]),
        "task_success": ("add", ["result", "runtime"]),
        "worker_shutting_down": (hostname, ["exitcode", "how", "sig"]),
        "worker_shutdown": ("Worker", []),
    }
    for name, (sender, args) in expected.items():
        assert (by[name]["sender"], by[name]["args"]) == (sender, args), by[name]
    assert by["celeryd_init"]["options"] == ["concurrency", "pool"]
    assert by["celeryd_init"]["values"]["instance"] == "Worker"
    assert by["after_setup_logger"]["logger"] == "root"
    assert by["after_setup_task_logger"]["logger"] == "celeriac.task"
    assert by["after_setup_logger"]["values"]["loglevel"] == 20  # -l info
    assert by["task_received"]["request_id"] == result.id
    assert by["task_unknown"]["values"]["name"] == "nobody.registered.this"
    assert by["task_unknown"]["values"]["id"] == unknown.id
    assert by["task_unknown"]["values"]["exc"] == "NotRegistered"
    assert by["task_rejected"]["values"] == {"message": "Delivery", "exc": None}
    assert by["task_success"]["values"]["result"] == 5 and by["task_success"]["runtime_ok"]
    assert by["worker_shutting_down"]["values"] == {"sig": "SIGTERM", "how": "Warm", "exitcode": 0}
    child_pid = by["worker_process_init"]["pid"]
    assert child_pid != main_pid and by["worker_process_shutdown"]["pid"] == child_pid
    assert by["worker_process_shutdown"]["values"]["pid"] == child_pid
    assert by["worker_process_shutdown"]["values"]["exitcode"] == 0
    assert by["task_success"]["pid"] == child_pid
    others = {"worker_process_init", "worker_process_shutdown", "task_success"}
    assert {call["pid"] for call in calls if call["signal"] not in others} == {main_pid}


def test_setup_logging_receivers_own_logging_and_solo_sends_worker_process_init(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    # Given a solo worker whose project receives setup_logging (it configures logging)
    watched = "setup_logging,after_setup_logger,worker_process_init,worker_shutting_down"
    env = _env(project, redis_url, redis_prefix, watched)
    worker = WorkerProcess.started(project, env, "-P", "solo", app="sigproj")
    # When it is stopped with SIGINT
    worker.signal(signal.SIGINT)
    assert worker.wait() == 0, worker.text
    worker.stop()
    calls = _calls(redis_url, redis_prefix)
    by = {call["signal"]: call for call in calls}
    # Then setup_logging fired once with Celery's arguments, and nothing was set up after it
    assert Counter(call["signal"] for call in calls) == Counter(
        {"setup_logging": 1, "worker_process_init": 1, "worker_shutting_down": 1}
    )
    assert by["setup_logging"]["sender"] is None
    assert by["setup_logging"]["args"] == ["colorize", "format", "logfile", "loglevel"]
    assert by["setup_logging"]["values"]["loglevel"] == 20
    # and the solo pool's process (the worker's own) sent worker_process_init, as Celery 5.7
    hostname = by["worker_process_init"]["sender"]
    assert hostname.startswith("celeriac@")
    assert by["worker_process_init"]["pid"] == by["worker_shutting_down"]["pid"]
    assert by["worker_shutting_down"]["values"] == {"sig": "SIGINT", "how": "Warm", "exitcode": 0}


def test_task_revoked_fires_for_an_expired_task_and_a_terminated_one(
    project: Path, redis_url: str, redis_prefix: str
) -> None:
    # Given a prefork worker whose project receives task_revoked
    env = _env(project, redis_url, redis_prefix, "task_revoked")
    worker = WorkerProcess.started(project, env, "-P", "prefork", "-c", "1", app="sigproj")
    client = _client(redis_url, redis_prefix)
    try:
        # When one call has expired before it runs, and another is revoked with
        # terminate=True while it runs
        past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
        expired = client.send_task("sigproj.add", (1, 1), expires=past)
        with pytest.raises(TaskRevokedError):
            expired.get(timeout=20)
        running = client.send_task("sigproj.sleepy", (60,))
        with redis.Redis.from_url(redis_url) as marks:
            assert marks.blpop([f"{redis_prefix}:started"], timeout=20) is not None
        client.control.revoke(running.id, terminate=True, signal="SIGTERM")
        with pytest.raises(TaskRevokedError):
            running.get(timeout=20)
    finally:
        worker.stop()
        client.broker.close()
        client.backend.close()
    # Then task_revoked fired once for each, with Celery's arguments
    calls = _calls(redis_url, redis_prefix)
    assert [(c["sender"], c["args"], c["request_id"]) for c in calls] == [
        ("add", ["expired", "request", "signum", "terminated"], expired.id),
        ("sleepy", ["expired", "request", "signum", "terminated"], running.id),
    ]
    assert calls[0]["values"] == {
        "request": "Request", "terminated": False, "signum": None, "expired": True,
    }  # fmt: skip
    assert calls[1]["values"] == {
        "request": "Request", "terminated": True, "signum": 15, "expired": False,
    }  # fmt: skip
