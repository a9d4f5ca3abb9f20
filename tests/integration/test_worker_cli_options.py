"""Celery's worker options that work here, on real worker processes and Redis:
``--time-limit``/``--soft-time-limit`` (the worker's task_time_limit and
task_soft_time_limit), ``--purge``/``--discard``, ``-I``/``--include`` and
``--disable-prefetch``. Tasks are sent from this process, as users send them.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import states
from celeriac.exceptions import TimeLimitExceeded
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os, time

    from celeriac import Celery
    from celeriac.exceptions import SoftTimeLimitExceeded

    URL = os.environ["CELERIAC_TEST_REDIS"]
    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    app = Celery(
        "proj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
        worker_prefetch_multiplier=4,
    )


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def nap(seconds):
        try:
            time.sleep(seconds)  # a blocking call: SIGALRM interrupts it in prefork
            return "slept"
        except SoftTimeLimitExceeded:
            return "soft limit hit"


    @app.task
    def stubborn():
        try:
            time.sleep(10)
        except SoftTimeLimitExceeded:
            time.sleep(10)  # ignores the soft limit: only the hard one ends it
    """
)
EXTRA = textwrap.dedent(
    """
    from proj import app


    @app.task
    def shout(word):
        return word.upper()
    """
)


@pytest.fixture
def proj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ModuleType]:
    """The project, imported here too (the sending side); ``extra`` is not imported by it."""
    (tmp_path / "proj.py").write_text(PROJECT)
    (tmp_path / "extra.py").write_text(EXTRA)
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


def start(proj: ModuleType, *args: str) -> WorkerProcess:
    worker = WorkerProcess(proj.DIR, proj.ENV, *args)
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def test_time_limit_options_are_the_worker_s_task_limits(proj: ModuleType) -> None:
    worker = start(proj, "-P", "prefork", "-c", "2", "--soft-time-limit", "0.3",
                   "--time-limit", "1.5")  # fmt: skip
    try:
        napping, stubborn = proj.nap.delay(8), proj.stubborn.delay()
        # Without the options neither task has a limit: the nap would sleep its 8 s.
        assert napping.get(timeout=5) == "soft limit hit"
        with pytest.raises(TimeLimitExceeded) as raised:
            stubborn.get(timeout=5)
        assert raised.value.args == (1.5,)
    finally:
        worker.stop()


def test_purge_include_and_disable_prefetch(proj: ModuleType) -> None:
    waiting = [proj.add.delay(n, n) for n in range(3)]
    waiting.append(proj.add.apply_async((1, 1), countdown=60))  # delayed: purged too
    worker = start(proj, "-P", "threads", "-c", "2", "--discard", "-I", "extra",
                   "--disable-prefetch")  # fmt: skip
    try:
        assert "purged 4 message(s) from celery" in worker.text
        assert proj.app.broker.queue_length("celery") == 0
        assert proj.app.broker.delayed_count("celery") == 0
        assert "  - extra.shout\n" in worker.text  # -I imported it: the worker runs it
        assert proj.app.send_task("extra.shout", ("hi",)).get(timeout=10) == "HI"
        # The app asks for a multiplier of 4; --disable-prefetch holds 1 per slot.
        assert "prefetch     2 (concurrency 2 x multiplier 1)" in worker.text
        assert proj.add.delay(2, 3).get(timeout=10) == 5
        assert [result.state for result in waiting] == [states.PENDING] * 4  # never ran
    finally:
        worker.stop()
