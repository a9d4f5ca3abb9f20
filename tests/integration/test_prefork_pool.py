"""The prefork pool with real child processes, driven directly (no worker): jobs come
from a Redis broker, results go to a Redis backend (a child's memory is not ours), and
children die by real signals. Tasks report that they started through Redis lists, so
the tests wait on events, never on sleeps."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio

from celeriac import Celery, signals, states
from celeriac.canvas import Signature
from celeriac.exceptions import WorkerLostError
from celeriac.trace import Outcome, OutcomeKind
from celeriac.worker.execution import Job, prepare
from celeriac.worker.memory import resident_kib
from celeriac.worker.pools.prefork import PreforkPool

_HOARD: list[bytes] = []  # what the memory-hungry task keeps (in the child)


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    app = Celery(
        "t",
        broker=redis_url,
        backend=redis_url,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
    )

    @app.task(name="t.pid_after")
    def pid_after(seconds: float) -> int:
        time.sleep(seconds)
        return os.getpid()

    @app.task(name="t.gate")
    def gate(started: str, go: str) -> int:
        """Say "started" (with the pid), then wait until the test says "go"."""
        client = redis.Redis.from_url(redis_url)
        try:
            client.rpush(started, os.getpid())
            client.blpop([go], timeout=10)
        finally:
            client.close()
        return os.getpid()

    @app.task(name="t.suicide")
    def suicide() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    @app.task(name="t.hog")
    def hog(mib: int) -> int:
        _HOARD.append(b"x" * (mib << 20))  # written, so resident (not lazily zero pages)
        return os.getpid()

    @app.task(name="t.async_pid")
    async def async_pid() -> int:
        await asyncio.sleep(0)
        return os.getpid()

    @app.task(name="t.fail")
    def fail() -> None:
        raise ValueError("bad input 42")

    @app.task(name="t.flaky", bind=True, max_retries=3)
    def flaky(self: Any) -> None:
        raise self.retry(countdown=60)

    try:
        yield app
    finally:
        app.close()


class Harness:
    """A started pool, an async Redis client for the tests' side of the gates, and the
    broker's async face; everything is stopped and closed on exit."""

    def __init__(self, app: Celery, redis_url: str, prefix: str, **options: Any) -> None:
        self.app = app
        self.pool = PreforkPool(app, **options)
        self.redis = redis.asyncio.Redis.from_url(redis_url)
        self.started, self.go = f"{prefix}:started", f"{prefix}:go"
        self.seen: set[int] = set()  # every child pid seen, to check they were all reaped

    async def __aenter__(self) -> Harness:
        await self.pool.start()
        self.seen.update(self.pool.info()["processes"])
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.pool.stop(terminate=True)
        finally:
            await self.redis.aclose()
            await self.app.broker.close_async()

    async def job(self, name: str, *args: Any) -> Job:
        """Publish a call of task ``name`` and fetch it back as a job, as the consumer does."""
        self.app.tasks[name].delay(*args)
        deliveries = await self.app.broker.fetch(["celery"], 1, timeout=5)
        assert len(deliveries) == 1
        job = prepare(self.app, deliveries[0], "prefork-test")
        assert isinstance(job, Job)
        return job

    async def gate_job(self) -> Job:
        return await self.job("t.gate", self.started, self.go)

    async def wait_started(self) -> int:
        """The pid of the next gate task to report that it started."""
        pid = await self.pop_pid(self.started)
        self.seen.add(pid)
        return pid

    async def pop_pid(self, key: str) -> int:
        popped = await self.redis.blpop([key], timeout=5)
        assert popped is not None, f"nothing pushed to {key} within 5 s"
        return int(popped[1])

    async def open_gates(self, n: int) -> None:
        await self.redis.rpush(self.go, *["go"] * n)

    def processes(self) -> list[int]:
        pids: list[int] = self.pool.info()["processes"]
        self.seen.update(pids)
        return pids


def pid_of(outcome: Outcome) -> int:
    assert outcome.kind is OutcomeKind.SUCCESS, outcome
    return int(outcome.retval)  # the wire carries the repr of the return value


def result_of(app: Celery, job: Job) -> Any:
    """The job's result as the Redis backend holds it (stored there by the child)."""
    assert job.request.id is not None
    return app.AsyncResult(job.request.id)


def alive(pid: int) -> bool:
    """True while ``pid`` exists, zombies included (an unreaped child is a leak too)."""
    return Path(f"/proc/{pid}").exists()


def pipe_fds() -> int:
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:")
        except OSError:
            continue  # the descriptor listdir itself used
    return count


def test_jobs_run_in_parallel_in_two_children_and_store_results(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=2) as h:
            jobs = [await h.job("t.pid_after", 0.5) for _ in range(2)]
            began = time.monotonic()
            outcomes = await asyncio.gather(*(h.pool.run(job) for job in jobs))
            elapsed = time.monotonic() - began
            pids = [pid_of(outcome) for outcome in outcomes]
            # Functional, not a benchmark: one slot would need at least 1 s.
            assert elapsed < 0.9, elapsed
            assert len(set(pids)) == 2 and os.getpid() not in pids
            for job, pid in zip(jobs, pids, strict=True):
                result = result_of(app, job)
                assert result.state == states.SUCCESS and result.result == pid

    asyncio.run(scenario())


def test_a_task_killing_its_own_process_raises_worker_lost_and_the_child_is_replaced(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=2) as h:
            with pytest.raises(WorkerLostError, match=r"killed by signal 9 \(SIGKILL\)") as lost:
                await h.pool.run(await h.job("t.suicide"))
            victim = int(str(lost.value).split()[2])  # "prefork child <pid> died ..."
            assert not alive(victim)  # reaped, not a zombie
            pids = h.processes()
            assert len(pids) == 2 and victim not in pids and all(map(alive, pids))
            assert pid_of(await h.pool.run(await h.job("t.pid_after", 0))) in pids

    asyncio.run(scenario())


def test_a_child_killed_from_outside_mid_task_raises_worker_lost_and_is_replaced(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=2) as h:
            running = asyncio.ensure_future(h.pool.run(await h.gate_job()))
            victim = await h.wait_started()
            os.kill(victim, signal.SIGKILL)
            with pytest.raises(WorkerLostError, match=rf"child {victim} .*SIGKILL"):
                await asyncio.wait_for(running, 5)
            pids = h.processes()
            assert len(pids) == 2 and victim not in pids
            # Both slots work: two gate tasks are running at the same time.
            both = [asyncio.ensure_future(h.pool.run(await h.gate_job())) for _ in range(2)]
            assert {await h.wait_started(), await h.wait_started()} == set(pids)
            await h.open_gates(2)
            assert sorted(pid_of(o) for o in await asyncio.gather(*both)) == pids

    asyncio.run(scenario())


def test_a_child_that_dies_while_idle_is_replaced(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=2) as h:
            first = [asyncio.ensure_future(h.pool.run(await h.gate_job())) for _ in range(2)]
            started = {await h.wait_started(), await h.wait_started()}
            await h.open_gates(2)
            await asyncio.gather(*first)  # both children are ready and idle now
            victim = started.pop()
            os.kill(victim, signal.SIGKILL)
            # The next two jobs run at the same time: the pool is back to two children.
            both = [asyncio.ensure_future(h.pool.run(await h.gate_job())) for _ in range(2)]
            second = {await h.wait_started(), await h.wait_started()}
            await h.open_gates(2)
            await asyncio.gather(*both)
            assert victim not in second and len(second) == 2 and not alive(victim)

    asyncio.run(scenario())


def test_a_job_handed_to_a_child_that_just_died_runs_on_another_child(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            victim = pid_of(await h.pool.run(await h.job("t.pid_after", 0)))
            job = await h.job("t.pid_after", 0)
            # No loop turn between the kill and the hand-over: the pool cannot have
            # noticed the death yet, so the job goes into the dead child's pipe.
            os.kill(victim, signal.SIGKILL)
            outcome = await asyncio.wait_for(h.pool.run(job), 5)
            assert pid_of(outcome) != victim and not alive(victim)

    asyncio.run(scenario())


def test_a_cancelled_run_leaves_its_child_to_finish_and_serve_again(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            running = asyncio.ensure_future(h.pool.run(await h.gate_job()))
            child = await h.wait_started()
            running.cancel()
            with pytest.raises(asyncio.CancelledError):
                await running
            await h.open_gates(1)  # its outcome now goes nowhere; the child becomes idle
            after = await asyncio.wait_for(h.pool.run(await h.job("t.pid_after", 0)), 5)
            assert pid_of(after) == child

    asyncio.run(scenario())


def test_children_retire_after_max_tasks_per_child(
    app: Celery, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> list[int]:
        options = {"concurrency": 1, "max_tasks_per_child": 2}
        async with Harness(app, redis_url, redis_prefix, **options) as h:
            pids = [pid_of(await h.pool.run(await h.job("t.pid_after", 0))) for _ in range(5)]
            assert len(h.processes()) == 1
            return pids

    with caplog.at_level(logging.INFO, logger="celeriac.worker.prefork"):
        pids = asyncio.run(scenario())
    a, b, c = dict.fromkeys(pids)  # first-seen order
    assert pids == [a, a, b, b, c]
    assert not alive(a) and not alive(b) and not alive(c)
    retired = [r.getMessage() for r in caplog.records if "retires" in r.getMessage()]
    reason = "it ran 2 tasks (max_tasks_per_child=2)"
    assert retired == [
        f"prefork child {a} retires: {reason}",
        f"prefork child {b} retires: {reason}",
    ]


def forked_resident_kib() -> int:
    """The resident memory of a process forked from this one, as the pool's are."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running any cleanup
        os.write(write, str(resident_kib()).encode())
        os._exit(0)
    os.close(write)
    try:
        return int(os.read(read, 64))
    finally:
        os.close(read)
        os.waitpid(pid, 0)


def test_a_child_over_max_memory_per_child_is_replaced_after_its_job(
    app: Celery, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A child starts as a copy of this process, but not with all of its resident pages
    # (file-backed ones are faulted in again): measure a forked copy, give it 30 MiB of
    # room, then 60 MiB more.
    limit = forked_resident_kib() + 30 * 1024

    async def scenario() -> list[int]:
        options = {"concurrency": 1, "max_memory_per_child": limit}
        async with Harness(app, redis_url, redis_prefix, **options) as h:
            small = pid_of(await h.pool.run(await h.job("t.pid_after", 0)))
            big = pid_of(await h.pool.run(await h.job("t.hog", 60)))
            after = pid_of(await h.pool.run(await h.job("t.pid_after", 0)))
            return [small, big, after]

    with caplog.at_level(logging.INFO, logger="celeriac.worker.prefork"):
        small, big, after = asyncio.run(scenario())
    assert small == big != after  # a small job does not retire it; the big one does
    assert not alive(big)
    assert any(f"child {big} retires: it uses" in r.getMessage() for r in caplog.records)


def test_terminate_kills_a_running_job_and_a_waiting_one_and_leaves_nothing_behind(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        pipes_before = pipe_fds()
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            running = asyncio.ensure_future(h.pool.run(await h.gate_job()))
            child = await h.wait_started()
            waiting = asyncio.ensure_future(h.pool.run(await h.job("t.pid_after", 0)))
            await asyncio.sleep(0)  # one turn of the loop: it now waits for the busy child
            began = time.monotonic()
            await h.pool.stop(terminate=True)
            with pytest.raises(WorkerLostError, match=rf"child {child} .*SIGKILL"):
                await asyncio.wait_for(running, 5)
            with pytest.raises(WorkerLostError, match="stopped before the job could start"):
                await asyncio.wait_for(waiting, 5)
            assert time.monotonic() - began < 3
            with pytest.raises(WorkerLostError):  # a stopped pool refuses, never hangs
                await asyncio.wait_for(h.pool.run(await h.job("t.pid_after", 0)), 5)
            assert h.processes() == []
            assert not any(alive(pid) for pid in h.seen)
            assert pipe_fds() == pipes_before

    asyncio.run(scenario())


def test_failure_and_retry_outcomes_cross_the_pipe(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            failing = await h.job("t.fail")
            outcome = await h.pool.run(failing)
            assert outcome.kind is OutcomeKind.FAILURE and outcome.state == states.FAILURE
            assert "bad input 42" in str(outcome.exc)
            assert result_of(app, failing).state == states.FAILURE

            retrying = await h.job("t.flaky")
            outcome = await h.pool.run(retrying)
            assert outcome.kind is OutcomeKind.RETRY and outcome.retry is not None
            sig = outcome.retry.sig
            assert isinstance(sig, Signature) and sig.task == "t.flaky"
            assert sig.options["retries"] == 1 and sig.options["task_id"] == retrying.request.id
            assert outcome.retry.when == 60
            assert result_of(app, retrying).state == states.RETRY

    asyncio.run(scenario())


def test_an_async_task_runs_in_a_child_on_a_loop_of_its_own(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            for _ in range(2):  # twice: the first run leaves nothing behind for the next
                assert pid_of(await h.pool.run(await h.job("t.async_pid"))) in h.processes()

    asyncio.run(scenario())


def test_process_signals_fire_in_children_and_a_graceful_stop_ends_them_cleanly(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    init_key, shutdown_key = f"{redis_prefix}:init", f"{redis_prefix}:shutdown"
    created: list[object] = []

    def on_init(**kwargs: Any) -> None:  # runs in the child
        with redis.Redis.from_url(redis_url) as client:
            client.rpush(init_key, os.getpid())

    def on_shutdown(pid: int, exitcode: int, **kwargs: Any) -> None:  # runs in the child
        with redis.Redis.from_url(redis_url) as client:
            client.rpush(shutdown_key, f"{pid}:{exitcode}")

    def on_create(sender: object, **kwargs: Any) -> None:  # runs here, in the parent
        created.append(sender)

    async def scenario() -> tuple[list[int], set[int]]:
        async with Harness(app, redis_url, redis_prefix, concurrency=2) as h:
            pids = h.processes()
            inits = {await h.pop_pid(init_key) for _ in pids}
            ran = pid_of(await h.pool.run(await h.job("t.pid_after", 0)))
            assert ran in pids
            await h.pool.stop(terminate=False)
            assert h.processes() == [] and not any(alive(pid) for pid in pids)
            return pids, inits

    signals.worker_process_init.connect(on_init, weak=False)
    signals.worker_process_shutdown.connect(on_shutdown, weak=False)
    signals.worker_before_create_process.connect(on_create, weak=False)
    try:
        pids, inits = asyncio.run(scenario())
    finally:
        signals.worker_process_init.disconnect(on_init)
        signals.worker_process_shutdown.disconnect(on_shutdown)
        signals.worker_before_create_process.disconnect(on_create)
    assert inits == set(pids) and os.getpid() not in inits
    with redis.Redis.from_url(redis_url) as marks:
        shutdowns = sorted(marks.lrange(shutdown_key, 0, -1))
    assert shutdowns == sorted(f"{p}:0".encode() for p in pids)
    assert len(created) == 2 and all(isinstance(s, PreforkPool) for s in created)


def test_children_ignore_sigint_the_parent_decides_when_they_stop(
    app: Celery, redis_url: str, redis_prefix: str
) -> None:
    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            running = asyncio.ensure_future(h.pool.run(await h.gate_job()))
            child = await h.wait_started()
            os.kill(child, signal.SIGINT)  # what Ctrl-C sends to the whole process group
            await h.open_gates(1)
            assert pid_of(await asyncio.wait_for(running, 5)) == child

    asyncio.run(scenario())


def test_a_child_that_fails_to_start_is_replaced_after_a_pause(
    app: Celery, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    counter = f"{redis_prefix}:starts"

    def broken_twice(**kwargs: Any) -> None:  # runs in the child, before it is ready
        with redis.Redis.from_url(redis_url) as client:
            starts = client.incr(counter)
        if starts <= 2:
            os._exit(3)

    async def scenario() -> None:
        async with Harness(app, redis_url, redis_prefix, concurrency=1) as h:
            outcome = await asyncio.wait_for(h.pool.run(await h.job("t.pid_after", 0)), 5)
            assert pid_of(outcome) in h.processes()

    signals.worker_process_init.connect(broken_twice, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="celeriac.worker.prefork"):
            asyncio.run(scenario())
    finally:
        signals.worker_process_init.disconnect(broken_twice)
    failed = [r.getMessage() for r in caplog.records if "failed to start" in r.getMessage()]
    assert len(failed) == 2 and all(m.endswith("exited with code 3") for m in failed)


def test_a_child_that_does_not_finish_starting_in_time_is_killed_and_replaced(
    app: Celery, redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    counter, hung = f"{redis_prefix}:starts", f"{redis_prefix}:hung"

    def hangs_once(**kwargs: Any) -> None:  # runs in the child, before it is ready
        with redis.Redis.from_url(redis_url) as client:
            if client.incr(counter) == 1:
                client.rpush(hung, os.getpid())
                time.sleep(60)  # a start-up stuck on something: the timeout ends it

    async def scenario() -> int:
        async with Harness(
            app, redis_url, redis_prefix, concurrency=1, proc_alive_timeout=0.5
        ) as h:
            outcome = await asyncio.wait_for(h.pool.run(await h.job("t.pid_after", 0)), 15)
            stuck = int((await h.redis.lpop(hung)) or 0)
            assert stuck and pid_of(outcome) != stuck and not alive(stuck)
            return stuck

    signals.worker_process_init.connect(hangs_once, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="celeriac.worker.prefork"):
            stuck = asyncio.run(scenario())
    finally:
        signals.worker_process_init.disconnect(hangs_once)
    messages = [r.getMessage() for r in caplog.records]
    assert (
        f"Timed out waiting for UP message from prefork child {stuck}: it did not finish "
        "starting within 0.5s (worker_proc_alive_timeout); killing it" in messages
    )
    assert any(m.startswith(f"prefork child {stuck} failed to start") for m in messages)


def test_info_describes_the_pool(app: Celery, redis_url: str, redis_prefix: str) -> None:
    async def scenario() -> None:
        options = {"concurrency": 2, "max_tasks_per_child": 10, "max_memory_per_child": 200_000}
        async with Harness(app, redis_url, redis_prefix, **options) as h:
            info = h.pool.info()
            assert info["pool"] == "prefork" and info["concurrency"] == 2
            assert len(info["processes"]) == 2 and all(map(alive, info["processes"]))
            assert info["max_tasks_per_child"] == 10
            assert info["max_memory_per_child"] == 200_000

    asyncio.run(scenario())
