"""Remote control and inspect against two real worker processes, on Redis and RabbitMQ:
round trips, destination addressing, revoke with terminate, pool_grow/pool_shrink as
``stats`` reports them, rate_limit, add_consumer, shutdown, and the ``inspect``,
``control`` and ``status`` commands."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import states
from celeriac.control.inspect import flatten_reply
from tests.integration.workers import (
    TEST_ENV,
    WorkerProcess,
    broker_url,
    fresh_queues,
    project_env,
)

A, B = "a@ctl", "b@ctl"
# Generous: a call addressed to nodes returns as soon as they all replied, and a shared,
# busy test machine may take a while to schedule a worker.
WAIT = 10.0


@dataclass
class Fleet:
    app: Any
    a: WorkerProcess  # prefork, 1 child
    b: WorkerProcess  # threads, 2 threads
    path: Path
    env: dict[str, str]
    marks: redis.Redis
    prefix: str

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", *args],
            cwd=self.path, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def wait_mark(self, name: str, timeout: float = 20) -> str:
        popped = self.marks.blpop([f"{self.prefix}:events:{name}"], timeout=timeout)
        assert popped is not None, f"no {name!r} mark within {timeout}s"
        return popped[1].decode()


@pytest.fixture(params=["redis", "amqp"])
def fleet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Fleet]:
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    app = importlib.import_module("proj").app
    fresh_queues(app)
    a = WorkerProcess.started(tmp_path, env, "-n", A, "-P", "prefork", "-c", "1")
    try:
        b = WorkerProcess.started(tmp_path, env, "-n", B, "-P", "threads", "-c", "2")
    except BaseException:
        a.stop()
        raise
    marks = redis.Redis.from_url(redis_url)
    try:
        yield Fleet(app, a, b, tmp_path, env, marks, redis_prefix)
    finally:
        for worker in (a, b):
            worker.stop()
        marks.close()
        app.close()
        sys.modules.pop("proj", None)


def test_inspect_and_control_round_trips_with_two_workers(fleet: Fleet) -> None:
    control = fleet.app.control
    # Every worker answers; a destination narrows who does.
    assert sorted(next(iter(r)) for r in control.ping(destination=[A, B], timeout=WAIT)) == [A, B]
    assert control.ping(destination=[B], timeout=WAIT) == [{B: {"ok": "pong"}}]
    assert control.inspect(destination=[A], timeout=WAIT).ping() == {A: {"ok": "pong"}}
    inspect = control.inspect(destination=[A, B], timeout=WAIT)
    stats = inspect.stats()
    assert stats is not None and set(stats) == {A, B}
    assert stats[A]["pool"]["implementation"] == "prefork"
    assert stats[B]["pool"]["max-concurrency"] == 2
    registered = inspect.registered()
    assert registered is not None and "proj.add" in registered[A]
    assert inspect.active_queues()[B][0]["name"] == "celery"
    assert inspect.scheduled() == {A: [], B: []}
    assert control.inspect(destination=[A], timeout=WAIT).conf()[A]["broker_url"]

    # A running task shows in active and query_task on the worker running it.
    result = fleet.app.tasks["proj.slow"].apply_async(("held", 3.0))
    fleet.wait_mark("started")
    active = inspect.active()
    assert active is not None
    running = [(node, info) for node, infos in active.items() for info in infos]
    assert [(info["id"], info["name"]) for _, info in running] == [(result.id, "proj.slow")]
    node = running[0][0]
    assert running[0][1]["args"] == ["held", 3.0] and running[0][1]["time_start"]
    found = control.inspect(destination=[node], timeout=WAIT).query_task(result.id)
    assert found is not None and found[node][result.id][0] == "active"
    assert result.get(timeout=20) == "held"
    assert inspect.stats()[node]["total"] == {"proj.slow": 1}


def test_revoke_with_terminate_kills_the_running_task(fleet: Fleet) -> None:
    control = fleet.app.control
    # Only the prefork worker consumes this queue: its child runs the task.
    assert control.add_consumer("ctl-kill", destination=[A], reply=True, timeout=WAIT) == [
        {A: {"ok": "add consumer ctl-kill"}}
    ]
    fresh_queues(fleet.app, "ctl-kill")
    result = fleet.app.tasks["proj.slow"].apply_async(("doomed", 60.0), queue="ctl-kill")
    child = int(fleet.wait_mark("started").split(":")[1])
    replies = control.revoke(
        result.id, terminate=True, signal="SIGKILL", reply=True, destination=[A], timeout=WAIT
    )
    assert replies == [{A: {"ok": f"terminate: {result.id}"}}]
    assert result.state == states.REVOKED or _wait_state(result, states.REVOKED)
    assert not _alive(child)
    revoked = control.inspect(destination=[A, B], timeout=WAIT).revoked()
    assert revoked is not None and result.id in revoked[A] and result.id in revoked[B]
    assert not fleet.marks.lrange(f"{fleet.prefix}:marks:finished", 0, -1)


def test_pool_grow_and_shrink_change_the_slots_stats_reports(fleet: Fleet) -> None:
    control = fleet.app.control
    inspect = control.inspect(destination=[A, B], timeout=WAIT)
    replies = control.pool_grow(2, destination=[A, B], reply=True, timeout=WAIT)
    assert flatten_reply(replies) == {A: {"ok": "pool will grow"}, B: {"ok": "pool will grow"}}
    stats = inspect.stats()
    assert stats is not None
    assert stats[A]["pool"]["max-concurrency"] == 3 and stats[B]["pool"]["max-concurrency"] == 4
    assert stats[A]["prefetch_count"] == 3
    _wait_for(lambda: len(inspect.stats()[A]["pool"]["processes"]) == 3)
    control.pool_shrink(2, destination=[A], reply=True, timeout=WAIT)
    _wait_for(lambda: len(inspect.stats()[A]["pool"]["processes"]) == 1)
    assert inspect.stats()[A]["pool"]["max-concurrency"] == 1
    # The pools still run tasks at their new sizes.
    results = [fleet.app.tasks["proj.add"].delay(i, i) for i in range(6)]
    assert [r.get(timeout=20) for r in results] == [2 * i for i in range(6)]


def test_rate_limit_changes_a_tasks_rate(fleet: Fleet) -> None:
    control = fleet.app.control
    control.add_consumer("ctl-rate", destination=[B], reply=True, timeout=WAIT)
    fresh_queues(fleet.app, "ctl-rate")
    assert control.rate_limit("proj.add", "20/m", destination=[B], reply=True, timeout=WAIT) == [
        {B: {"ok": "new rate limit set successfully"}}
    ]
    registered = control.inspect(destination=[B], timeout=WAIT).registered()
    assert registered is not None and "proj.add [rate_limit=20/m]" in registered[B]
    started = time.monotonic()
    first, second = (fleet.app.tasks["proj.add"].apply_async((i, 1), queue="ctl-rate")
                     for i in range(2))  # fmt: skip
    assert first.get(timeout=20) == 1 and second.get(timeout=20) == 2
    assert time.monotonic() - started >= 2.0  # one per 3 s: the second waited its token
    refused = control.rate_limit("proj.add", "1/x", reply=True, destination=[B], timeout=WAIT)
    assert refused[0][B]["error"].startswith("Invalid rate limit string:")


def test_shutdown_stops_a_worker_and_status_lists_the_nodes(fleet: Fleet) -> None:
    status = fleet.cli("status", "-t", str(WAIT), "-d", f"{A},{B}")
    assert f"->  {A}: OK" in status.stdout and f"->  {B}: OK" in status.stdout
    assert "2 nodes online." in status.stdout
    listed = fleet.cli("inspect", "ping", "-d", B, "-t", str(WAIT), "--json")
    assert json.loads(listed.stdout) == {B: {"ok": "pong"}}
    grown = fleet.cli("control", "pool_grow", "1", "-d", A, "-t", str(WAIT))
    assert f"->  {A}: OK" in grown.stdout and "pool will grow" in grown.stdout
    assert fleet.app.control.shutdown(destination=[A], reply=True, timeout=0.5) == []
    assert fleet.a.wait(timeout=30) == 0
    assert fleet.app.control.ping(destination=[A, B], timeout=3.0) == [{B: {"ok": "pong"}}]
    fleet.b.stop()
    none = fleet.cli("status", "-t", "0.5", check=False)
    assert none.returncode == 69 and "No nodes replied within time constraint" in none.stderr


def _wait_state(result: Any, state: str, timeout: float = 20) -> bool:
    _wait_for(lambda: result.state == state, timeout)
    return True


def _wait_for(check: Any, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.1)  # polling the workers' replies; nothing to await


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
