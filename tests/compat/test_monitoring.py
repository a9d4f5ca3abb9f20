"""User guide, "Monitoring and Management": the command line (status, inspect, control,
call, result, purge), inspect and control from Python, and a real-time event monitor
built on ``app.events`` as the guide's recipe writes it — against two real workers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import states
from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os
import time

import redis

from celeriac import Celery

app = Celery("guide_monitor")
app.config_from_object("celeryconfig")
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


@app.task
def add(x, y):
    return x + y


@app.task
def slow(tag):
    notes.rpush(f"{PREFIX}:started", tag)
    notes.blpop([f"{PREFIX}:release:{tag}"], timeout=30)  # runs until the test says so
    return tag


@app.task
def fails():
    raise KeyError("missing")
"""


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_monitor", PROJECT) as guide:
        workers = [
            guide.worker("-P", "threads", "-c", "2", "-E", "-n", f"{name}@%h")
            for name in ("w1", "w2")
        ]
        try:
            yield guide
        finally:
            for worker in workers:
                assert worker.stop() == 0, worker.text


def cli(guide: Guide, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "guide_monitor", *args],
        cwd=guide.path, env=guide.env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def nodes() -> set[str]:
    return {f"w1@{socket.gethostname()}", f"w2@{socket.gethostname()}"}


def test_status_lists_the_workers_that_answer(guide: Guide) -> None:
    done = cli(guide, "status")
    assert done.returncode == 0, done.stderr
    for node in nodes():
        assert f"{node}: OK" in done.stdout
    assert "2 nodes online" in done.stdout


def test_inspect_from_python(guide: Guide) -> None:
    app = guide.module.app
    inspect = app.control.inspect(timeout=5, destination=sorted(nodes()))  # all answered: done
    assert set(inspect.ping()) == nodes()
    registered = inspect.registered()
    assert all("guide_monitor.add" in tasks for tasks in registered.values())
    stats = inspect.stats()
    assert set(stats) == nodes()
    result = guide.module.slow.delay("inspected")
    assert guide.redis().blpop([f"{guide.prefix}:started"], timeout=20) is not None
    try:
        active = inspect.active()
        running = [task for tasks in active.values() for task in tasks]
        assert [task["id"] for task in running] == [result.id]
        assert running[0]["name"] == "guide_monitor.slow"
        found = inspect.query_task(result.id)
        assert any(result.id in replies for replies in found.values())
    finally:
        guide.redis().rpush(f"{guide.prefix}:release:inspected", "go")
    assert result.get(timeout=20) == "inspected"


def test_control_commands_from_python_and_the_command_line(guide: Guide) -> None:
    app = guide.module.app
    replies = app.control.rate_limit(
        "guide_monitor.add", "100/m", reply=True, timeout=5, destination=sorted(nodes())
    )
    assert {node for reply in replies for node in reply} == nodes()
    named = ",".join(sorted(nodes()))
    done = cli(guide, "inspect", "registered", "--json", "-d", named)
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == nodes()
    done = cli(guide, "control", "rate_limit", "guide_monitor.add", "1000/s", "-d", named)
    assert done.returncode == 0, done.stderr


def test_call_result_and_purge_from_the_command_line(guide: Guide) -> None:
    done = cli(guide, "call", "guide_monitor.add", "--args", "[2, 3]")
    assert done.returncode == 0, done.stderr
    task_id = done.stdout.strip()
    assert guide.module.app.AsyncResult(task_id).get(timeout=20) == 5
    done = cli(guide, "result", task_id)
    assert done.returncode == 0 and done.stdout.strip() == "5"
    done = cli(guide, "purge", "-f", "-Q", "nobody-reads-this")
    assert done.returncode == 0, done.stderr


def test_a_real_time_monitor_with_events(guide: Guide) -> None:
    app = guide.module.app
    state = app.events.State()
    failed: list[dict[str, Any]] = []
    receiver = app.events.Receiver(app, handlers={})

    def announce_failed_tasks(event: dict[str, Any]) -> None:
        state.event(event)
        failed.append(event)
        receiver.should_stop = True  # the test has what it waits for

    receiver.handlers.update({"task-failed": announce_failed_tasks, "*": state.event})
    listening = threading.Thread(target=receiver.capture, kwargs={"timeout": 30}, daemon=True)
    listening.start()
    result = None
    while not failed and listening.is_alive():  # the receiver may join after the first send
        result = guide.module.fails.delay()
        with pytest.raises(KeyError):
            result.get(timeout=20)
        listening.join(2)
    assert failed and result is not None
    task = state.tasks[failed[-1]["uuid"]]
    assert task.state == states.FAILURE and "KeyError" in (task.exception or "")
    assert {worker.hostname for worker in state.alive_workers()} <= nodes()
