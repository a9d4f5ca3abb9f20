"""Events from real worker processes started from the CLI, on Redis and on RabbitMQ: one
task's events arrive in order with Celery's fields (threads and prefork pools), a failure
and a retry carry their exception, a task's ``send_event`` reaches a receiver, heartbeats
come every 2 s, a SIGKILLed worker shows offline in ``State`` within three heartbeats, a
stopped one at once, and ``celeriac events --dump`` prints the events.

Receivers read the stream's history (``history=True``), so nothing is missed between a
test's send and its read; waits are on events, never on sleeps.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from celeriac.events import State
from tests.integration.workers import ROOT, WorkerProcess, imported_project

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": os.environ["CELERIAC_TEST_PREFIX"]}
    app = Celery("evproj", broker=BROKER, broker_transport_options=options,
                 task_send_sent_event=True)


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def boom():
        raise ValueError("boom")


    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self):
        if self.request.retries == 0:
            raise self.retry(exc=KeyError("once"))
        return "second time"


    @app.task(bind=True)
    def progress(self, done):
        self.send_event("task-progress", done=done)
        return done
    """
)


@pytest.fixture(scope="module", params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModuleType]]:
    with imported_project(request, tmp_path_factory, "evproj", PROJECT) as found:
        yield found


def env_for(path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }


def start(path: Path, name: str, *args: str) -> WorkerProcess:
    return WorkerProcess.started(path, env_for(path), "-n", f"{name}@%h", *args, app="evproj")


def events_until(proj: ModuleType, done: Any, *, history: bool = True,
                 timeout: float = 20) -> list[dict[str, Any]]:  # fmt: skip
    """Events (from the stream's history on) until ``done(events)`` says enough."""
    seen: list[dict[str, Any]] = []
    receiver = proj.app.events.Receiver(proj.app, history=history)
    deadline = time.monotonic() + timeout
    for event in receiver.itercapture(timeout=timeout, wakeup=False):
        seen.append(event)
        if done(seen) or time.monotonic() > deadline:
            break
    return seen


def of_task(events: list[dict[str, Any]], task_id: str) -> list[dict[str, Any]]:
    return [event for event in events if event.get("uuid") == task_id]


def all_four(task_id: str) -> Any:
    return lambda seen: len(of_task(seen, task_id)) >= 4


def final(task_id: str) -> Any:
    finals = {"task-succeeded", "task-failed"}
    return lambda seen: any(e.get("uuid") == task_id and e["type"] in finals for e in seen)


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_one_tasks_events_arrive_in_order_with_celerys_fields(
    project: tuple[Path, ModuleType], pool: str
) -> None:
    path, proj = project
    worker = start(path, f"order-{pool}", "-E", "-P", pool, "-c", "2")
    try:
        # When a task is sent (task_send_sent_event is on) and run by a worker with -E
        result = proj.add.delay(2, 3)
        assert result.id
        events = of_task(events_until(proj, all_four(result.id)), result.id)
    finally:
        worker.stop()
    # Then the worker's events arrive in the order they happened, each with Celery's
    # fields; the client's task-sent travels apart (after its publish), so it may come
    # before or after them, as in Celery, but its timestamp comes first
    sent = next(event for event in events if event["type"] == "task-sent")
    from_worker = [event for event in events if event is not sent]
    types = [event["type"] for event in from_worker]
    assert types == ["task-received", "task-started", "task-succeeded"], worker.text
    received, started, succeeded = from_worker
    events = [sent, *from_worker]
    assert sent["name"] == "evproj.add" and sent["args"] == "(2, 3)" and sent["kwargs"] == "{}"
    assert sent["queue"] == "celery" and sent["hostname"].startswith("gen")
    assert received["name"] == "evproj.add" and received["args"] == "(2, 3)"
    assert received["retries"] == 0 and received["root_id"] == result.id
    assert received["hostname"] == started["hostname"] == succeeded["hostname"]
    assert received["hostname"].startswith(f"order-{pool}@")
    assert succeeded["result"] == "5" and succeeded["runtime"] >= 0
    for event in events:
        assert {"timestamp", "utcoffset", "pid", "clock", "local_received"} <= set(event)
    worker_events = [received, started, succeeded]
    assert [e["clock"] for e in worker_events] == sorted(e["clock"] for e in worker_events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)


def test_failures_and_retries_carry_their_exception(project: tuple[Path, ModuleType]) -> None:
    path, proj = project
    worker = start(path, "fail", "-E", "-P", "threads", "-c", "2")
    try:
        failed, flaky = proj.boom.delay(), proj.flaky.delay()
        events = events_until(proj, lambda seen: final(failed.id)(seen) and final(flaky.id)(seen))
    finally:
        worker.stop()
    failure = next(e for e in of_task(events, failed.id) if e["type"] == "task-failed")
    assert failure["exception"] == "ValueError('boom')"
    assert "ValueError: boom" in failure["traceback"]
    # (task-sent events come from the clients, the retry's from the worker's producer)
    types = [e["type"] for e in of_task(events, flaky.id) if e["type"] != "task-sent"]
    assert types == ["task-received", "task-started", "task-retried",
                     "task-received", "task-started", "task-succeeded"]  # fmt: skip
    retried = next(e for e in of_task(events, flaky.id) if e["type"] == "task-retried")
    assert retried["exception"] == "KeyError('once')"
    # And a State fed with them tells the story
    state = State()
    for event in events:
        state.event(event)
    assert state.tasks[failed.id].state == "FAILURE"
    assert state.tasks[flaky.id].state == "SUCCESS"
    assert state.tasks[flaky.id].result == "'second time'"


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_send_event_from_a_task_reaches_a_receiver(
    project: tuple[Path, ModuleType], pool: str
) -> None:
    path, proj = project
    # Custom events are sent with or without -E, as in Celery
    worker = start(path, f"custom-{pool}", "-P", pool, "-c", "1")
    try:
        result = proj.progress.delay(7)
        events = events_until(
            proj,
            lambda seen: (
                {"task-sent", "task-progress"} <= {e["type"] for e in of_task(seen, result.id)}
            ),
        )
    finally:
        worker.stop()
    progress = next(e for e in of_task(events, result.id) if e["type"] == "task-progress")
    assert progress["done"] == 7 and progress["hostname"].startswith(f"custom-{pool}@")
    # Without -E, the task's own events are not sent (task-sent, from the client, travels
    # apart and may come before or after)
    assert sorted(e["type"] for e in of_task(events, result.id)) == ["task-progress", "task-sent"]


def test_heartbeats_every_two_seconds_and_offline_detection(
    project: tuple[Path, ModuleType],
) -> None:
    path, proj = project
    state = State()
    stop = threading.Event()
    live = threading.Event()

    def follow() -> None:
        receiver = proj.app.events.Receiver(proj.app, handlers={"*": state.event})
        receiver.handlers["*"] = lambda event: (state.event(event), live.set())
        for _ in receiver.itercapture(wakeup=False):
            if stop.is_set():
                return

    # Heartbeats are sent without -E
    victim = WorkerProcess(path, env_for(path), "-n", "victim@%h", "-P", "prefork", "-c", "1",
                           app="evproj")  # fmt: skip
    calm = start(path, "calm", "-P", "threads", "-c", "1")
    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    try:
        victim.wait_ready()
        hostname = wait_for(lambda: next((h for h in state.workers if h.startswith("victim@")
                                          and len(state.workers[h].heartbeats) >= 3), None),
                            timeout=15, what="three heartbeats from the victim")  # fmt: skip
        worker = state.workers[hostname]
        beats = worker.heartbeats
        gaps = [later - earlier for earlier, later in itertools.pairwise(beats)]
        assert all(1.2 <= gap <= 3.2 for gap in gaps), gaps  # every 2 s, give or take load
        assert worker.freq == 2.0 and worker.pool_size == 1 and worker.alive
        assert worker.sw_ident == "py-celeriac" and len(worker.loadavg) == 3
        # When the worker is killed (no worker-offline is sent)
        killed_at = time.time()
        os.kill(victim.process.pid, signal.SIGKILL)
        wait_for(lambda: not worker.alive, timeout=10, what="the victim shown offline")
        # Then State shows it offline within three heartbeats (6 s) of its last one
        assert time.time() - killed_at <= 3 * 2.0 + 1.0
        assert worker.heartbeat_expires - worker.heartbeats[-1] == pytest.approx(6.0)
        # And a worker stopped cleanly is offline at once (worker-offline)
        calm_host = next(h for h in state.workers if h.startswith("calm@"))
        assert state.workers[calm_host].alive
        calm.stop()
        wait_for(lambda: not state.workers[calm_host].alive, timeout=5, what="calm offline")
        assert state.workers[calm_host].offline_at is not None
    finally:
        stop.set()
        victim.stop()
        calm.stop()
    proj.app.events.Dispatcher().send("worker-heartbeat")  # ends the follower's wait
    follower.join(10)


def wait_for(check: Any, *, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # the follower thread applies events as they come
    return value


def test_the_events_command_dumps_them(project: tuple[Path, ModuleType]) -> None:
    path, proj = project
    worker = start(path, "dump", "-E", "-P", "threads", "-c", "1")
    try:
        result = proj.add.delay(20, 22)
        command = [sys.executable, "-m", "celeriac", "-A", "evproj", "events", "--dump",
                   "--history", "--timeout", "5"]  # fmt: skip
        dump = subprocess.Popen(command, cwd=path, env=env_for(path), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
        lines: list[str] = []
        assert dump.stdout is not None
        for line in dump.stdout:
            lines.append(line)
            if result.id in line and "task succeeded" in line:
                break
        dump.terminate()
        dump.wait(10)
        dump.stdout.close()
    finally:
        worker.stop()
    text = "".join(lines)
    assert lines[0].startswith("-> evdump: starting capture...")
    succeeded = next(line for line in lines if "task succeeded" in line and result.id in line)
    assert f"evproj.add({result.id}) args=(20, 22) kwargs={{}}" in succeeded
    assert "result=42" in succeeded and succeeded.startswith("dump@")
    assert f"task received: evproj.add({result.id})" in text
