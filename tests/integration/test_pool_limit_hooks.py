"""Every pool clocks a task's time limits around exactly its body (trace's hook), so a slow
``before_start`` does not count, and a limit is the body's failure with the task's own
failure hooks, even when the task's ``__call__`` awaits before it calls ``run``.

Threads, solo and asyncio workers run in-process (``start_worker``); the prefork worker is
a real CLI process on Redis whose tasks report through Redis lists (waited on with BLPOP).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from celeriac import Celery, Task, signals, states
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.testing import start_worker
from tests.integration.workers import ROOT, WorkerProcess

SLOW_START = 0.4  # seconds before_start takes: longer than the soft limit
SOFT = 0.2


@pytest.mark.parametrize("pool", ["threads", "solo", "asyncio"])
def test_limits_clock_the_body_only_not_a_slow_before_start(app: Celery, pool: str) -> None:
    class SlowStart(Task):
        def before_start(self, task_id: str, args: Any, kwargs: Any) -> None:
            time.sleep(SLOW_START)  # e.g. opening a connection before the body

    if pool == "asyncio":

        @app.task(base=SlowStart, soft_time_limit=SOFT, time_limit=3)
        async def quick(x: int) -> int:
            await asyncio.sleep(0)
            return x * 2

    else:

        @app.task(base=SlowStart, soft_time_limit=SOFT, time_limit=3)
        def quick(x: int) -> int:
            return x * 2

    with start_worker(app, pool=pool):
        assert quick.delay(21).get(timeout=10) == 42


def test_asyncio_limits_reach_a_body_whose_call_awaits_first_with_its_failure_hooks(
    app: Celery,
) -> None:
    failures: list[str] = []
    errbacks: list[str] = []
    signalled: list[str] = []

    class Session(Task):
        async def __call__(self, *args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)  # e.g. open a session before the body
            return await self.run(*args, **kwargs)

        def on_failure(self, exc: Any, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
            failures.append(type(exc).__name__)

    @app.task(base=Session, soft_time_limit=SOFT, time_limit=3)
    async def crawl() -> str:
        await asyncio.Event().wait()  # only the limit ends it
        return "never"

    @app.task
    def report_failure(task_id: str) -> None:
        errbacks.append(task_id)

    def on_task_failure(sender: Any = None, exception: Any = None, **kwargs: Any) -> None:
        signalled.append(type(exception).__name__)

    signals.task_failure.connect(on_task_failure, sender=crawl, weak=False)
    try:
        with start_worker(app, pool="asyncio"):
            began = time.monotonic()
            result = crawl.apply_async(link_error=report_failure.s())
            with pytest.raises(SoftTimeLimitExceeded):
                result.get(timeout=10)
            assert time.monotonic() - began < 3  # the soft limit ended it, not the hard one
            deadline = time.monotonic() + 10
            while not errbacks and time.monotonic() < deadline:
                time.sleep(0.02)  # the errback is a task of its own: poll for its run
    finally:
        signals.task_failure.disconnect(on_task_failure, sender=crawl)
    assert result.state == states.FAILURE
    assert failures == ["SoftTimeLimitExceeded"]  # the task's own on_failure ran
    assert signalled == ["SoftTimeLimitExceeded"] and errbacks == [result.id]


def test_asyncio_soft_limit_goes_through_autoretry_for_as_on_the_other_pools(
    app: Celery,
) -> None:
    attempts: list[int] = []

    @app.task(bind=True, soft_time_limit=SOFT, time_limit=3,
              autoretry_for=(SoftTimeLimitExceeded,), retry_kwargs={"countdown": 0})  # fmt: skip
    async def sync_mailbox(self: Any) -> str:
        attempts.append(self.request.retries)
        if self.request.retries == 0:
            await asyncio.Event().wait()  # the first try hangs: the soft limit ends it
        return "synced"

    with start_worker(app, pool="asyncio"):
        assert sync_mailbox.delay().get(timeout=10) == "synced"
    assert attempts == [0, 1]


# -- prefork: the child's soft limit -------------------------------------------------------------
PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery, Task

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "hookproj", broker=URL, backend=URL, broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)


    def mark(name, value):
        marks.rpush(f"{PREFIX}:events:{name}", value)


    class SlowStart(Task):
        def before_start(self, task_id, args, kwargs):
            time.sleep(0.4)  # longer than the soft limit: not the body's time

        def on_failure(self, exc, task_id, args, kwargs, einfo):
            mark("on_failure", type(exc).__name__)


    @app.task(base=SlowStart, soft_time_limit=0.2, time_limit=5)
    def quick(x):
        return x * 2


    @app.task(base=SlowStart, soft_time_limit=0.2, time_limit=5)
    def stuck():
        time.sleep(4)  # interrupted at the soft limit
        return "never"


    @app.task
    def report_failure(task_id):
        mark("errback", task_id)
    """
)


@pytest.fixture
def hookproj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    (tmp_path / "hookproj.py").write_text(PROJECT)
    monkeypatch.setenv("CELERIAC_TEST_REDIS", redis_url)
    monkeypatch.setenv("CELERIAC_TEST_PREFIX", redis_prefix)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("hookproj", None)
    module = importlib.import_module("hookproj")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess(tmp_path, env, "-P", "prefork", "-c", "1", app="hookproj")
    try:
        worker.wait_ready()
        yield module
    finally:
        worker.stop()
        module.app.close()
        sys.modules.pop("hookproj", None)


def wait_mark(proj: ModuleType, name: str) -> str:
    popped = proj.marks.blpop([f"{proj.PREFIX}:events:{name}"], 10)
    assert popped is not None, f"no {name!r} mark within 10s"
    return str(popped[1].decode())


def test_prefork_soft_limit_clocks_the_body_only_and_fails_with_its_hooks(
    hookproj: ModuleType,
) -> None:
    assert hookproj.quick.delay(21).get(timeout=10) == 42  # a slow before_start is not timed
    began = time.monotonic()
    result = hookproj.stuck.apply_async(link_error=hookproj.report_failure.s())
    with pytest.raises(SoftTimeLimitExceeded):
        result.get(timeout=10)
    assert time.monotonic() - began < 4  # the sleep was interrupted
    assert wait_mark(hookproj, "on_failure") == "SoftTimeLimitExceeded"
    assert wait_mark(hookproj, "errback") == result.id
