"""The worker as users run it: a process started from the CLI, tasks sent from another
process (this one), real Redis, and real RabbitMQ for the tests that take ``project``.
Each pool runs the same suite."""

from __future__ import annotations

import importlib
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.workers import (
    TEST_ENV,
    WorkerProcess,
    broker_url,
    fresh_queues,
    project_env,
)

Project = tuple[Path, dict[str, str], ModuleType]


@pytest.fixture
def make_project(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Project]]:
    """Writes the project, imports it here (the sending side), returns its worker env."""
    apps: list[ModuleType] = []

    def make(lease: float = 30, delivery_limit: int = 5, broker: str = "") -> Project:
        env = project_env(
            tmp_path, redis_url, redis_prefix, broker,
            LEASE=str(lease), DELIVERY_LIMIT=str(delivery_limit),
        )  # fmt: skip
        for name in (*TEST_ENV, "LEASE", "DELIVERY_LIMIT"):
            monkeypatch.setenv(name, env[name])
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop("proj", None)
        proj = importlib.import_module("proj")
        apps.append(proj)
        fresh_queues(proj.app)
        return tmp_path, env, proj

    yield make
    for proj in apps:
        proj.app.close()
    sys.modules.pop("proj", None)


@pytest.fixture(params=["redis", "amqp"])
def project(request: pytest.FixtureRequest, make_project: Callable[..., Project]) -> Project:
    """The project on Redis, then on RabbitMQ (results in Redis either way)."""
    return make_project(broker=broker_url(request))


# Modules a worker never loads unless it uses them (each is hundreds of KB resident).
OPTIONAL_MODULES = (
    "celeriac.beat", "celeriac.schedules", "celeriac.events.state", "celeriac.brokers.memory",
    "celeriac.events.receiver", "celeriac.messages.celery", "celeriac.control.wire_mailbox",
    "celeriac.security.signing", "celeriac.app.control", "celeriac.cli.outbox",
    "pickle", "zoneinfo", "logging.handlers", "pprint",
)  # fmt: skip
POOL_MODULES = {"threads": "threads", "solo": "threads", "asyncio": "asyncio_pool",
                "prefork": "prefork"}  # fmt: skip


def wait_marks(proj: ModuleType, name: str, count: int, timeout: float = 10) -> None:
    """Block until ``count`` tasks have made mark ``name`` (BLPOP: no polling)."""
    for _ in range(count):
        assert proj.marks.blpop(f"{proj.PREFIX}:events:{name}", timeout), f"no {name} mark"


def marks(proj: ModuleType, name: str) -> list[str]:
    values = proj.marks.lrange(f"{proj.PREFIX}:marks:{name}", 0, -1)
    return [v.decode() for v in values]


@pytest.mark.parametrize("pool", ["threads", "asyncio", "solo", "prefork"])
def test_each_pool_runs_tasks_sent_from_another_process(
    project: tuple[Path, dict[str, str], ModuleType], pool: str
) -> None:
    path, env, proj = project
    worker = WorkerProcess(path, env, "-P", pool, "-c", "2", "-n", "w1@%h")
    try:
        worker.wait_ready()
        results = [proj.add.delay(n, n) for n in range(20)]
        assert [r.get(timeout=20) for r in results] == [2 * n for n in range(20)]
        assert proj.async_add.delay(2, 3).get(timeout=20) == 5
        info = proj.where.delay().get(timeout=20)
        assert info["hostname"].startswith("w1@")
        # worker_tune_gc: start-up objects frozen, fewer young-generation scans (a
        # prefork child inherits both from the parent that forked it).
        assert info["gc_young"] == 10_000 and info["gc_frozen"] > 0
        # Memory: a worker loads the pool it runs, not the others, nor what only beat,
        # monitors or another broker need.
        pools = {name: f"celeriac.worker.pools.{module}" for name, module in POOL_MODULES.items()}
        expected = {pools[pool]}
        if pool == "asyncio":  # its plain functions run on the threads pool
            expected.add(pools["threads"])
        if pool == "prefork":  # multiprocessing: the parent and its children talk in pickles
            expected.add("pickle")
        optional = [*OPTIONAL_MODULES, *pools.values()]
        assert set(proj.loaded.delay(optional).get(timeout=20)) == expected
        assert worker.stop() == 0
    finally:
        worker.stop()
    log = worker.text
    assert "w1@" in log and "received" in log and "succeeded in" in log
    assert f"({pool})" in log or pool in log  # the banner names the pool


def test_sigterm_under_load_loses_nothing_and_exits_in_time(
    project: tuple[Path, dict[str, str], ModuleType],
) -> None:
    path, env, proj = project
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "2", "--shutdown-timeout", "10")
    worker.wait_ready()
    results = [proj.slow.delay(f"t{n}", 0.3) for n in range(8)]
    wait_marks(proj, "started", 2)  # both slots busy
    started = time.monotonic()
    worker.signal(signal.SIGTERM)  # one signal: warm (a second one would mean cold)
    assert worker.wait(timeout=20) == 0
    assert time.monotonic() - started < 10
    worker.stop()
    finished = set(marks(proj, "finished"))
    left = proj.app.broker.queue_length("celery")
    assert len(finished) + left == 8, (finished, left)  # each one either ran or is queued
    second = WorkerProcess(path, env, "-P", "threads", "-c", "4")
    try:
        second.wait_ready()
        assert sorted(r.get(timeout=30) for r in results) == sorted(f"t{n}" for n in range(8))
    finally:
        second.stop()


def test_a_killed_worker_s_tasks_run_on_another_worker_after_one_lease(
    make_project: Callable[..., Project],
) -> None:
    path, env, proj = make_project(lease=2)
    first = WorkerProcess(path, env, "-P", "threads", "-c", "1")
    try:
        first.wait_ready()
        result = proj.slow.delay("victim", 3)
        wait_marks(proj, "started", 1)
        first.signal(signal.SIGKILL)  # no warm shutdown, no ack: a dead machine
        killed_at = time.monotonic()
    finally:
        first.stop()
    second = WorkerProcess(path, env, "-P", "threads", "-c", "1")
    try:
        second.wait_ready()
        assert result.get(timeout=30) == "victim"
        assert time.monotonic() - killed_at < 2 + 3 + 10  # lease + task + start-up
        assert len(marks(proj, "started")) == 2  # it ran again, on the second worker
    finally:
        second.stop()


def test_a_killed_prefork_child_s_task_runs_again_and_the_pool_is_refilled(
    project: Project,
) -> None:
    path, env, proj = project
    worker = WorkerProcess(path, env, "-P", "prefork", "-c", "2")
    try:
        worker.wait_ready()
        result = proj.slow.delay("doomed", 1.0)
        assert proj.marks.blpop(f"{proj.PREFIX}:events:started", 10)
        child_pid = int(marks(proj, "started")[0].split(":")[1])
        os.kill(child_pid, signal.SIGKILL)  # the child dies mid-task
        assert result.get(timeout=20) == "doomed"  # redelivered, run by another child
        runs = marks(proj, "started")
        assert len(runs) == 2 and runs[1].split(":")[1] != str(child_pid)
        # Back to full size: two slow tasks run side by side in two live children.
        pair = [proj.slow.delay(f"p{n}", 0.5) for n in range(2)]
        wait_marks(proj, "started", 3)  # the rerun above, then these two at once
        assert sorted(r.get(timeout=20) for r in pair) == ["p0", "p1"]
        pids = {m.split(":")[1] for m in marks(proj, "started")[2:]}
        assert len(pids) == 2 and str(child_pid) not in pids
        assert worker.stop() == 0
    finally:
        worker.stop()
    assert "WorkerLostError" in worker.text or "died" in worker.text


@pytest.mark.parametrize("how", ["cold", "sigquit"])
def test_cold_and_immediate_shutdowns_lose_nothing(
    make_project: Callable[..., Project], how: str
) -> None:
    lease = 2.0
    path, env, proj = make_project(lease=lease)
    first = WorkerProcess(path, env, "-P", "prefork", "-c", "1")
    try:
        first.wait_ready()
        result = proj.slow.delay("interrupted", 3)
        wait_marks(proj, "started", 1)
        stopped_at = time.monotonic()
        if how == "cold":
            first.signal(signal.SIGTERM)  # warm...
            first.wait_for_log("warm shutdown")
            first.signal(signal.SIGTERM)  # ...and a second signal: cold, give back now
        else:
            first.signal(signal.SIGQUIT)  # immediate: the lease brings the message back
        assert first.wait(timeout=10) == 0
    finally:
        first.stop()
    if how == "cold":
        assert proj.app.broker.queue_length("celery") == 1  # given back at once
    second = WorkerProcess(path, env, "-P", "threads", "-c", "1")
    try:
        second.wait_ready()
        assert result.get(timeout=30) == "interrupted"
        if how == "sigquit":
            assert time.monotonic() - stopped_at >= lease * 0.9  # not before the lease
    finally:
        second.stop()


def test_a_task_that_keeps_killing_its_process_is_dead_lettered_not_looped(
    make_project: Callable[..., Project],
) -> None:
    from celeriac.brokers.base import DeadLetterReason
    from celeriac.exceptions import WorkerLostError

    path, env, proj = make_project(delivery_limit=2)
    worker = WorkerProcess(path, env, "-P", "prefork", "-c", "1")
    try:
        worker.wait_ready()
        result = proj.poison.delay()
        with pytest.raises(WorkerLostError):
            result.get(timeout=20)  # recorded, so get() does not wait forever
        assert len(marks(proj, "poison")) == 2  # delivered twice, then stopped
        [letter] = proj.app.broker.dead_letters("celery")
        assert letter.reason is DeadLetterReason.WORKER_LOST
        assert proj.add.delay(1, 1).get(timeout=20) == 2  # the worker is still serving
    finally:
        worker.stop()


def test_a_cold_stop_ends_a_threads_worker_at_once(project: Project) -> None:
    path, env, proj = project
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "1")
    try:
        worker.wait_ready()
        proj.slow.delay("long", 30)
        wait_marks(proj, "started", 1)
        worker.signal(signal.SIGTERM)
        worker.wait_for_log("warm shutdown")
        stopped_at = time.monotonic()
        worker.signal(signal.SIGTERM)  # cold: the thread cannot be stopped, the process can
        assert worker.wait(timeout=15) == 0
        assert time.monotonic() - stopped_at < 5
        assert proj.app.broker.queue_length("celery") == 1  # given back
    finally:
        worker.stop()


def test_revoke_with_terminate_stops_a_running_prefork_task(project: Project) -> None:
    from celeriac.exceptions import TaskRevokedError

    path, env, proj = project
    worker = WorkerProcess(path, env, "-P", "prefork", "-c", "1")
    try:
        worker.wait_ready()
        result = proj.slow.delay("revoke-me", 30)
        wait_marks(proj, "started", 1)
        result.revoke(terminate=True)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=15)
        assert marks(proj, "finished") == []  # stopped, not finished
        assert proj.add.delay(2, 2).get(timeout=15) == 4  # the pool was refilled
        assert proj.app.broker.queue_length("celery") == 0  # acked, not redelivered
    finally:
        worker.stop()
    assert "terminating child" in worker.text


def test_sigusr1_writes_every_thread_s_stack_and_the_worker_carries_on(
    make_project: Callable[..., Project],
) -> None:
    """Celery's stack dump for a worker that seems stuck; a prefork child still ends on
    SIGUSR1 (``revoke(terminate=True, signal='SIGUSR1')``), as its default."""
    from celeriac.exceptions import TaskRevokedError

    path, env, proj = make_project()
    worker = WorkerProcess.started(path, env, "-P", "prefork", "-c", "1")
    try:
        worker.signal(signal.SIGUSR1)
        worker.wait_for_log("(most recent call first)")
        worker.wait_for_log("_run_once")  # the event loop's thread, among the stacks
        worker.wait_for_log("asyncio tasks (")  # then what each asyncio task awaits
        worker.wait_for_log("_fetch_loop")
        assert proj.add.delay(2, 3).get(timeout=15) == 5  # still serving
        result = proj.slow.delay("usr1", 30)
        wait_marks(proj, "started", 1)
        result.revoke(terminate=True, signal="SIGUSR1")
        with pytest.raises(TaskRevokedError):
            result.get(timeout=15)
        assert marks(proj, "finished") == []
        assert worker.stop() == 0
    finally:
        worker.stop()
