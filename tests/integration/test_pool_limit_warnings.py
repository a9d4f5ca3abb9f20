"""A worker whose pool cannot enforce the configured time limits the way prefork does says
so at start: one WARNING line naming the tasks and what happens instead on that pool.

The worker runs as users run it (``python -m celeriac -A proj worker``, real Redis); the
test reads its log. The wording for settings-wide limits is checked on the function.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.worker.timelimits import pool_limit_warning
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import asyncio, os, time

    from celeriac import Celery
    from celeriac.exceptions import SoftTimeLimitExceeded

    URL = os.environ["CELERIAC_TEST_REDIS"]
    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    app = Celery(
        "proj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )


    @app.task(soft_time_limit=1, time_limit=2)
    def nap():
        try:
            time.sleep(5)  # only prefork's SIGALRM interrupts a blocking call
            return "slept"
        except SoftTimeLimitExceeded:
            return "soft limit hit"


    @app.task(time_limit=30)
    def export():
        return "exported"


    @app.task(soft_time_limit=1)
    async def crawl():
        await asyncio.sleep(0)
        return "crawled"


    @app.task
    def add(x, y):
        return x + y
    """
)
HEADLINE = "Time limits on the {pool} pool do not work as on prefork"


@pytest.fixture
def project(tmp_path: Path, redis_url: str, redis_prefix: str) -> tuple[Path, dict[str, str]]:
    (tmp_path / "proj.py").write_text(PROJECT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        "PYTHONUNBUFFERED": "1",
        "CELERIAC_TEST_REDIS": redis_url,
        "CELERIAC_TEST_PREFIX": redis_prefix,
    }
    return tmp_path, env


def start_up_log(project: tuple[Path, dict[str, str]], pool: str) -> list[str]:
    """The log lines of a worker on ``pool`` up to ``ready.``; the worker is stopped."""
    worker = WorkerProcess(*project, "-P", pool, "-c", "1")
    try:
        worker.wait_ready()
        return list(worker.log)
    finally:
        worker.stop()


def limit_warnings(log: list[str], pool: str) -> list[str]:
    return [line for line in log if HEADLINE.format(pool=pool) in line]


@pytest.mark.parametrize("pool", ["threads", "solo"])
def test_a_thread_pool_says_which_limits_cannot_interrupt_a_blocking_call(
    project: tuple[Path, dict[str, str]], pool: str
) -> None:
    [line] = limit_warnings(start_up_log(project, pool), pool)
    assert "WARNING/MainProcess" in line
    assert "soft limits of tasks proj.crawl, proj.nap raise SoftTimeLimitExceeded" in line
    assert "a blocking call (time.sleep, a socket read) runs to its end first" in line
    assert "fails with TimeLimitExceeded instead" in line
    assert "hard limits of tasks proj.export, proj.nap cannot stop a thread" in line
    assert "proj.add" not in line  # no limit: nothing differs for it
    assert line.rstrip().endswith("on the prefork pool (-P prefork).")


def test_the_asyncio_pool_tells_plain_tasks_from_coroutines(
    project: tuple[Path, dict[str, str]],
) -> None:
    [line] = limit_warnings(start_up_log(project, "asyncio"), "asyncio")
    assert "soft limits of plain tasks proj.nap raise SoftTimeLimitExceeded only at" in line
    assert "hard limits of plain tasks proj.export, proj.nap cannot stop a thread" in line
    assert "soft limits of async def tasks proj.crawl cancel the coroutine" in line
    assert "asyncio.CancelledError" in line and "proj.add" not in line


def test_prefork_enforces_every_limit_and_says_nothing(
    project: tuple[Path, dict[str, str]],
) -> None:
    log = start_up_log(project, "prefork")
    assert not [line for line in log if "do not work as on prefork" in line], "".join(log)


# -- the wording, on the function ----------------------------------------------------------------
@pytest.fixture
def plain_app() -> Iterator[Celery]:
    app = Celery("w", broker="memory://", backend="cache+memory://", set_as_current=False)
    try:
        yield app
    finally:
        app.close()


def test_a_settings_wide_limit_names_every_task_and_the_setting(plain_app: Celery) -> None:
    plain_app.conf.task_soft_time_limit = 5
    for n in range(10):
        plain_app.task(name=f"a.task{n}")(lambda: None)
    plain_app.task(name="a.own", soft_time_limit=2)(lambda: None)
    # @shared_task tasks other tests defined join every app (as in Celery): count them too
    more = len(plain_app.tasks.regular()) - 8  # the line names eight
    warning = pool_limit_warning(plain_app, "threads")
    assert warning is not None
    assert "soft limits of tasks a.own, a.task0, a.task1" in warning
    assert f"and {more} more (task_soft_time_limit=5s for those without their own)" in warning
    assert "hard limits" not in warning
    assert pool_limit_warning(plain_app, "prefork") is None


def test_no_limit_or_one_that_is_dropped_says_nothing(plain_app: Celery) -> None:
    plain_app.task(name="w.free")(lambda: None)
    assert pool_limit_warning(plain_app, "threads") is None
    # A soft limit not below the hard one never fires (limits_for drops it): only the hard.
    plain_app.task(name="w.odd", soft_time_limit=9, time_limit=3)(lambda: None)
    warning = pool_limit_warning(plain_app, "threads")
    assert warning is not None and "soft limits" not in warning
    assert "hard limits of tasks w.odd cannot stop a thread" in warning
