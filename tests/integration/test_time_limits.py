"""Task time limits with real workers: soft limits raise inside the body so it can save
its work, hard limits stop it (prefork: the child is killed and replaced; threads and
asyncio: best effort, always logged), per call, per task and globally.

Threads, solo and asyncio workers run here (``start_worker``, in-process broker and
results); prefork workers are real CLI processes on Redis, and their tasks report what
they do through Redis lists, so the tests wait on events (BLPOP), never on sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.testing import start_worker
from celeriac.worker import timelimits
from celeriac.worker.execution import Job
from celeriac.worker.pools import threads
from tests.integration.workers import ROOT, WorkerProcess

SOFT = 0.3  # seconds: every soft limit here
HARD = 3.0  # a hard limit the soft-limit tests must never reach


def render_page(n: int) -> str:
    """Pure-Python work (a thread's limit lands at the next bytecode, see pools.threads)."""
    return "".join(chr(65 + (n + i) % 26) for i in range(200))


# -- generate_report on the thread-based pools ------------------------------------
@pytest.mark.parametrize("pool", ["threads", "solo", "asyncio"])
def test_generate_report_saves_partial_work_at_the_soft_limit_then_fails_soft(
    app: Celery, pool: str, caplog: pytest.LogCaptureFixture
) -> None:
    partial: dict[str, int] = {}

    def fetch_report_data(report_id: str) -> list[int]:
        return list(range(100))

    def render_pdf(data: list[int], pages: list[str]) -> None:
        n = 0
        while True:  # far more pages than fit in the soft limit
            pages.append(render_page(n))
            n += 1

    @app.task(time_limit=HARD, soft_time_limit=SOFT)
    def generate_report(report_id: str) -> dict[str, Any]:
        pages: list[str] = []
        try:
            data = fetch_report_data(report_id)
            render_pdf(data, pages)
            return {"report_id": report_id, "url": "never"}
        except SoftTimeLimitExceeded:
            partial[report_id] = len(pages)  # save_partial_result(report_id)
            raise

    caplog.set_level(logging.INFO)
    with start_worker(app, pool=pool):
        began = time.monotonic()
        result = generate_report.delay("daily")
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)
        elapsed = time.monotonic() - began
    assert result.state == states.FAILURE
    assert partial["daily"] > 0  # the except branch ran and saved what it had
    assert SOFT <= elapsed < HARD, elapsed
    assert "soft time limit (0.3s) exceeded" in caplog.text
    assert "hard time limit" not in caplog.text


# -- threads: soft and hard limits, where they come from ------------------------------------------
def spin(seconds: float) -> int:
    """Busy pure-Python work for ``seconds`` (or until interrupted)."""
    n, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        n += 1
    return n


def test_threads_soft_limit_interrupts_a_pure_python_busy_loop(app: Celery) -> None:
    seen: list[str] = []

    @app.task(soft_time_limit=SOFT)
    def crunch() -> int:
        try:
            return spin(30)
        except SoftTimeLimitExceeded:
            seen.append("soft")
            raise

    with start_worker(app, pool="threads"):
        result = crunch.delay()
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)
    assert seen == ["soft"] and result.state == states.FAILURE


def test_threads_hard_limit_is_a_best_effort_and_logged_as_an_error(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(time_limit=SOFT)
    def runaway() -> int:
        return spin(30)

    with start_worker(app, pool="threads"):
        result = runaway.delay()
        with pytest.raises(TimeLimitExceeded) as raised:
            result.get(timeout=10)
    assert result.state == states.FAILURE and raised.value.args == (SOFT,)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR and "hard time" in r.message]
    assert len(errors) == 1
    message = errors[0].getMessage()
    assert f"runaway[{result.id}] hard time limit (0.3s) exceeded" in message
    assert "cannot be force-stopped" in message and "-P prefork" in message


def test_a_call_s_limits_override_the_task_s(app: Celery) -> None:
    @app.task(soft_time_limit=60, time_limit=120)
    def crunch(seconds: float) -> int:
        return spin(seconds)

    with start_worker(app, pool="threads"):
        soft = crunch.apply_async((30,), soft_time_limit=SOFT)
        with pytest.raises(SoftTimeLimitExceeded):
            soft.get(timeout=10)
        hard = crunch.apply_async((30,), time_limit=SOFT)  # the task's soft (60 s) is dropped
        with pytest.raises(TimeLimitExceeded):
            hard.get(timeout=10)
        # A longer per-call limit beats a shorter task limit too.
        quick = app.task(name="t.quick", soft_time_limit=0.05)(spin)
        assert quick.apply_async((0.2,), soft_time_limit=30).get(timeout=10) > 0


def test_global_settings_apply_when_neither_call_nor_task_sets_a_limit(app: Celery) -> None:
    app.conf.task_soft_time_limit = SOFT
    app.conf.task_time_limit = HARD

    @app.task
    def crunch() -> int:
        return spin(30)

    @app.task(soft_time_limit=30)  # the task's own limit wins over the setting
    def patient() -> int:
        return spin(2 * SOFT)

    with start_worker(app, pool="solo"):
        result = crunch.delay()
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)
        assert patient.delay().get(timeout=10) > 0


def test_a_task_under_its_limits_is_unaffected_and_its_alarms_never_fire_later(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(soft_time_limit=0.1, time_limit=0.2)
    def quick(x: int) -> int:
        return x * 2

    @app.task
    def crunch(seconds: float) -> int:
        return spin(seconds)

    with start_worker(app, pool="solo"):  # one thread: the next task runs where quick ran
        assert [quick.delay(n).get(timeout=10) for n in range(3)] == [0, 2, 4]
        # Busy well past quick's limits in the same thread: nothing may land in it.
        assert crunch.delay(0.5).get(timeout=10) > 0
    assert "time limit" not in caplog.text


def test_a_job_without_limits_arms_no_alarm(app: Celery, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_alarms(*args: Any) -> None:
        raise AssertionError("an alarm was armed for a job without limits")

    monkeypatch.setattr(threads.ALARMS, "call_later", no_alarms)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="threads"):
        assert add.delay(2, 3).get(timeout=10) == 5


# -- asyncio: cancellation at the limits -----------------------------------------------------------
def test_asyncio_soft_limit_cancels_the_coroutine_which_saves_its_work(app: Celery) -> None:
    saved: list[str] = []

    @app.task(soft_time_limit=SOFT, time_limit=HARD)
    async def fetch_all(name: str) -> str:
        try:
            await asyncio.Event().wait()  # waits forever: only the limit ends it
        except asyncio.CancelledError:
            saved.append(name)  # partial work, then let the cancellation go on
            raise
        return name

    @app.task(soft_time_limit=SOFT)
    async def graceful() -> str:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "partial"  # handling the soft limit by returning is a success
        return "all"

    with start_worker(app, pool="asyncio", concurrency=2):
        began = time.monotonic()
        result = fetch_all.delay("inbox")
        with pytest.raises(SoftTimeLimitExceeded):
            result.get(timeout=10)
        assert time.monotonic() - began < HARD
        assert graceful.delay().get(timeout=10) == "partial"
    assert saved == ["inbox"] and result.state == states.FAILURE


def test_asyncio_hard_limit_cancels_a_body_that_swallowed_the_soft_cancellation(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task(soft_time_limit=0.2, time_limit=0.5)
    async def stubborn() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # ignores the soft limit...
            await asyncio.Event().wait()
        await asyncio.Event().wait()  # ...and goes on waiting
        return "never"

    with start_worker(app, pool="asyncio"):
        result = stubborn.delay()
        with pytest.raises(TimeLimitExceeded) as raised:
            result.get(timeout=10)
    assert raised.value.args == (0.5,) and result.state == states.FAILURE
    assert f"stubborn[{result.id}] hard time limit (0.5s) exceeded" in caplog.text


def test_asyncio_hard_limit_cancels_again_a_body_that_lost_the_first_cancel(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    """On Python < 3.12 a cancel landing as an ``asyncio.wait_for`` in the body finishes is
    lost (the body carries on as if nothing happened): the limit cancels once more."""

    @app.task(time_limit=0.3)
    async def unlucky() -> str:
        with contextlib.suppress(asyncio.CancelledError):  # the hard limit's cancel, lost
            await asyncio.Event().wait()
        await asyncio.Event().wait()  # back to waiting: only another cancel ends it
        return "never"

    with start_worker(app, pool="asyncio"):
        result = unlucky.delay()
        with pytest.raises(TimeLimitExceeded):
            result.get(timeout=10)
    assert result.state == states.FAILURE
    assert f"unlucky[{result.id}] still runs 1.0s after its hard time limit" in caplog.text
    assert "cancelled again" in caplog.text


def test_asyncio_task_under_its_limits_is_unaffected(app: Celery) -> None:
    hooks: list[Any] = []

    @app.task(bind=True, soft_time_limit=0.1, time_limit=0.2)
    async def quick(self: Any, x: int) -> int:
        await asyncio.sleep(0)
        hooks.append(self.run)  # the task object and its run are the real ones
        return x + 1

    @app.task
    async def later() -> str:
        await asyncio.sleep(0.4)  # past quick's limits, on the same loop
        return "done"

    with start_worker(app, pool="asyncio"):
        assert quick.delay(1).get(timeout=10) == 2
        assert later.delay().get(timeout=10) == "done"
    assert "run" not in vars(quick)  # nothing left on the task object
    assert hooks and hooks[0].__name__ == "quick"


# -- which limits apply (pure) ---------------------------------------------------------------------
def job_of(app: Celery, task: Any, timelimit: tuple[Any, Any] = (None, None)) -> Job:
    request = task.request  # an empty request for this task
    request.timelimit = timelimit
    return Job(task, request)


def test_limits_for_prefers_the_call_then_the_task_then_the_settings(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    app.conf.task_time_limit = 100
    app.conf.task_soft_time_limit = 50

    @app.task(time_limit=20)
    def limited() -> None: ...

    @app.task
    def plain() -> None: ...

    assert timelimits.limits_for(job_of(app, plain)) == (100.0, 50.0)
    assert timelimits.limits_for(job_of(app, limited)) == (20.0, None)  # 50 >= 20: dropped
    assert "soft time limit (50s) is not below its hard time limit (20s)" in caplog.text
    assert timelimits.limits_for(job_of(app, limited, (5, 2))) == (5.0, 2.0)
    # None and 0 mean "not set here"; nonsense is ignored with a warning.
    assert timelimits.limits_for(job_of(app, limited, (0, None))) == (20.0, None)
    assert timelimits.limits_for(job_of(app, plain, ("soon", -1))) == (100.0, 50.0)
    assert "ignoring the call's time_limit='soon'" in caplog.text
    app.conf.task_time_limit = app.conf.task_soft_time_limit = None
    assert timelimits.limits_for(job_of(app, plain)) == (None, None)


# -- prefork: real worker processes ----------------------------------------------------------------
PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery
    from celeriac.exceptions import SoftTimeLimitExceeded

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "proj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)


    def mark(name, value):
        marks.rpush(f"{PREFIX}:events:{name}", value)


    def fetch_report_data(report_id):
        return {"report_id": report_id}


    def render_pdf(data):
        time.sleep(60)  # a blocking call: SIGALRM interrupts it in a prefork child


    @app.task(time_limit=5, soft_time_limit=0.3)
    def generate_report(report_id):
        try:
            data = fetch_report_data(report_id)
            pdf = render_pdf(data)
            return {"report_id": report_id, "url": pdf}
        except SoftTimeLimitExceeded:
            mark("partial", report_id)  # save_partial_result(report_id)
            raise


    @app.task(time_limit=60)
    def forever():
        mark("forever", os.getpid())
        while True:
            pass


    @app.task
    def gate(go):
        mark("gate", os.getpid())
        marks.blpop([f"{PREFIX}:{go}"], 10)
        return os.getpid()


    @app.task(time_limit=1, soft_time_limit=0.5)
    def quick(x):
        return x * 2
    """
)


@pytest.fixture
def proj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The project above, imported here too (the sending side)."""
    (tmp_path / "proj.py").write_text(PROJECT)
    monkeypatch.setenv("CELERIAC_TEST_REDIS", redis_url)
    monkeypatch.setenv("CELERIAC_TEST_PREFIX", redis_prefix)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    module = importlib.import_module("proj")
    module.ENV = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        "PYTHONUNBUFFERED": "1",
    }
    module.DIR = tmp_path
    try:
        yield module
    finally:
        module.app.close()
        sys.modules.pop("proj", None)


@pytest.fixture
def prefork(proj: ModuleType) -> Iterator[WorkerProcess]:
    worker = WorkerProcess(proj.DIR, proj.ENV, "-P", "prefork", "-c", "2")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def wait_mark(proj: ModuleType, name: str, timeout: float = 10) -> str:
    popped = proj.marks.blpop([f"{proj.PREFIX}:events:{name}"], timeout)
    assert popped is not None, f"no {name!r} mark within {timeout}s"
    return str(popped[1].decode())


def test_prefork_generate_report_soft_limit_interrupts_a_blocking_call(
    proj: ModuleType, prefork: WorkerProcess
) -> None:
    began = time.monotonic()
    result = proj.generate_report.delay("monthly")
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=10)
    assert time.monotonic() - began < 5  # the hard limit (5 s) was not reached
    assert wait_mark(proj, "partial") == "monthly"
    assert result.state == states.FAILURE
    prefork.wait_for_log(f"generate_report[{result.id}] soft time limit (0.3s) exceeded")
    assert "hard time limit" not in prefork.text
    assert proj.quick.delay(21).get(timeout=10) == 42  # under its limits: unaffected


def test_prefork_kills_a_task_at_its_hard_limit_and_refills_the_pool(
    proj: ModuleType, prefork: WorkerProcess
) -> None:
    # The call's time_limit (0.5 s) overrides the task's (60 s).
    result = proj.forever.apply_async(time_limit=0.5)
    victim = int(wait_mark(proj, "forever"))
    with pytest.raises(TimeLimitExceeded) as raised:
        result.get(timeout=10)
    assert raised.value.args == (0.5,) and result.state == states.FAILURE
    prefork.wait_for_log(
        f"forever[{result.id}] hard time limit (0.5s) exceeded; child {victim} killed"
    )
    assert not Path(f"/proc/{victim}").exists()  # killed and reaped
    # Back at full size: two tasks run side by side, in two children other than the victim.
    gates = [proj.gate.delay("go") for _ in range(2)]
    pids = {int(wait_mark(proj, "gate")) for _ in gates}
    proj.marks.rpush(f"{proj.PREFIX}:go", "go", "go")
    assert {g.get(timeout=10) for g in gates} == pids
    assert len(pids) == 2 and victim not in pids
    assert proj.app.broker.queue_length("celery") == 0  # the timed-out message was settled
    assert "WorkerLostError" not in prefork.text and "died running the task" not in prefork.text
