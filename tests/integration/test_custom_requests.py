"""Custom request classes and ``retry_on_worker_lost`` on real CLI workers (Redis).

``Task.Request`` names a subclass of ``celeriac.worker.request.Request``; the worker calls
its hooks in its main process on every pool, prefork included (where the task ran in a
child). The hooks report through Redis lists, so the tests wait on BLPOP, never on
sleeps. A prefork child running a ``retry_on_worker_lost`` task is SIGKILLed: the task
is sent again as ``retry()`` would, until ``max_retries`` runs out.
"""

from __future__ import annotations

import os
import signal
import textwrap
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac import states
from celeriac.exceptions import WorkerLostError
from tests.conftest import REDIS_URL
from tests.integration.workers import ROOT, WorkerProcess, imported_project

PROJECT = textwrap.dedent(
    """
    import logging, os, time

    import redis

    from celeriac import Celery, Task
    from celeriac.exceptions import SoftTimeLimitExceeded
    from celeriac.worker.request import Request

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "reqproj", broker=URL, backend=URL, broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)
    logger = logging.getLogger("my.package")


    def report(task_id, *fields):
        marks.rpush(f"{PREFIX}:hooks:{task_id}", "|".join(str(f) for f in fields))


    class MyRequest(Request):
        "A minimal custom request to log failures and hard time limits."

        def on_timeout(self, soft, timeout):
            super().on_timeout(soft, timeout)
            if not soft:
                logger.warning("A hard timeout was enforced for task %s", self.task.name)
            report(self.id, "timeout", soft, timeout)

        def on_failure(self, exc_info, send_failed_event=True, return_ok=False):
            super().on_failure(
                exc_info, send_failed_event=send_failed_event, return_ok=return_ok
            )
            logger.warning("Failure detected for task %s", self.task.name)
            report(self.id, "failure", repr(exc_info.exception).split("(")[0], return_ok,
                   self.acknowledged)

        def on_accepted(self, pid, time_accepted):
            super().on_accepted(pid, time_accepted)
            report(self.id, "accepted", self.worker_pid, self.time_start > 0)

        def on_success(self, failed__retval__runtime, **kwargs):
            super().on_success(failed__retval__runtime, **kwargs)
            failed, retval, runtime = failed__retval__runtime
            if not failed:
                report(self.id, "success", retval, self.acknowledged, self.name, self.args)

        def on_retry(self, exc_info):
            super().on_retry(exc_info)
            report(self.id, "retry", type(exc_info.exception).__name__)


    class Broken(Request):
        def on_success(self, failed__retval__runtime, **kwargs):
            raise RuntimeError("a broken hook")


    class MyTask(Task):
        Request = MyRequest  # a class, or its path: 'reqproj:MyRequest'


    @app.task(base=MyTask)
    def where(x):
        return [x, os.getpid()]


    @app.task(Request="reqproj:MyRequest")
    def boom():
        raise ValueError("boom")


    @app.task(base=MyTask)
    def slow(seconds):
        try:
            for _ in range(int(seconds * 20)):  # short sleeps: a thread's limit lands promptly
                time.sleep(0.05)
        except SoftTimeLimitExceeded:
            time.sleep(0.3)  # its clean-up, as a task that catches the soft limit does
            raise
        return "finished"


    @app.task(base=MyTask, bind=True, default_retry_delay=0)
    def again(self):
        if not self.request.retries:
            raise self.retry()
        return "done"


    @app.task(Request=Broken)
    def hooked_badly():
        return "fine"


    @app.task(base=MyTask, bind=True, retry_on_worker_lost=True, default_retry_delay=0.2,
              max_retries=2)
    def fragile(self, tag, survive_at):
        request = self.request
        run = f"{request.retries}|{request.delivery_count}|{os.getpid()}"
        marks.rpush(f"{PREFIX}:runs:{tag}", run)
        if request.retries >= survive_at:
            return "survived"
        time.sleep(60)  # until its child is killed
    """
)
WAIT = 20


@pytest.fixture(scope="module", params=["redis"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModuleType]]:
    with imported_project(request, tmp_path_factory, "reqproj", PROJECT) as found:
        yield found


@pytest.fixture
def marks() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    client.close()


def start(path: Path, pool: str) -> WorkerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    return WorkerProcess.started(path, env, "-P", pool, "-c", "2", app="reqproj")


def hooks(marks: redis.Redis, proj: ModuleType, task_id: str, count: int) -> list[list[str]]:
    """The next ``count`` hook reports of ``task_id``, in order (waits for each)."""
    found = []
    for _ in range(count):
        item = marks.blpop([f"{proj.PREFIX}:hooks:{task_id}"], timeout=WAIT)
        assert item is not None, f"hook report {len(found) + 1} of {count} never came: {found}"
        found.append(item[1].split("|"))
    return found


@pytest.mark.parametrize("pool", ["prefork", "threads"])
def test_the_worker_calls_a_custom_requests_hooks_in_its_main_process(
    project: tuple[Path, ModuleType], marks: redis.Redis, pool: str
) -> None:
    path, proj = project
    worker = start(path, pool)
    try:
        # A success: accepted with the pid that ran the body, then on_success once acked.
        result = proj.where.delay(7)
        ran_in = result.get(timeout=WAIT)[1]
        accepted, success = hooks(marks, proj, result.id, 2)
        assert accepted == ["accepted", str(ran_in), "True"]
        assert success == ["success", f"[7, {ran_in}]", "True", proj.where.name, "(7,)"]
        if pool == "prefork":
            assert ran_in != worker.process.pid  # a child ran it; the hooks ran in the parent

        # A failure (a task naming its request class by path) reaches on_failure.
        failed = proj.boom.delay()
        with pytest.raises(ValueError, match="boom"):
            failed.get(timeout=WAIT)
        assert hooks(marks, proj, failed.id, 2)[1] == ["failure", "ValueError", "True", "True"]

        # Celery's documented example: a hard time limit calls on_failure, then on_timeout.
        limited = proj.slow.apply_async((10,), time_limit=1)
        assert limited.get(timeout=WAIT, propagate=False) is not None
        _, failure, timeout = hooks(marks, proj, limited.id, 3)
        assert failure[:2] == ["failure", "TimeLimitExceeded"]
        assert timeout == ["timeout", "False", "1.0"]
        worker.wait_for_log(f"A hard timeout was enforced for task {proj.slow.name}")
        worker.wait_for_log(f"Failure detected for task {proj.slow.name}")

        # A soft limit calls on_timeout(True, ...) while the body runs; it then fails.
        soft = proj.slow.apply_async((10,), soft_time_limit=0.5, time_limit=8)
        assert soft.get(timeout=WAIT, propagate=False) is not None
        _, timeout, failure = hooks(marks, proj, soft.id, 3)
        assert timeout == ["timeout", "True", "0.5"]
        assert failure[:2] == ["failure", "SoftTimeLimitExceeded"]

        # retry() goes through on_failure to on_retry (the base class routes it).
        retried = proj.again.delay()
        assert retried.get(timeout=WAIT) == "done"
        kinds = [r[0] for r in hooks(marks, proj, retried.id, 5)]
        # (the retry may start before the first run's hooks have run: they come after its ack)
        assert Counter(kinds) == {"accepted": 2, "retry": 1, "failure": 1, "success": 1}
        assert kinds.index("retry") < kinds.index("failure")  # called from on_failure

        # A hook that raises is logged; the task's outcome and the worker are unharmed.
        assert proj.hooked_badly.delay().get(timeout=WAIT) == "fine"
        worker.wait_for_log("Broken.on_success raised")
        assert proj.where.delay(8).get(timeout=WAIT)[0] == 8
    finally:
        assert worker.stop() == 0, worker.text


def _next_run(marks: redis.Redis, proj: ModuleType, tag: str) -> list[str]:
    item = marks.blpop([f"{proj.PREFIX}:runs:{tag}"], timeout=WAIT)
    assert item is not None, f"run of {tag} never started"
    return item[1].split("|")


def test_a_task_whose_child_is_killed_is_retried_until_max_retries(
    project: tuple[Path, ModuleType], marks: redis.Redis
) -> None:
    path, proj = project
    worker = start(path, "prefork")
    try:
        # Survives on its second retry: killed twice, sent again each time as a retry.
        result = proj.fragile.delay("twice", 2)
        for retries in range(2):
            run_retries, delivery, pid = _next_run(marks, proj, "twice")
            # A new message each time (a retry, not a redelivery of the same one).
            assert (run_retries, delivery) == (str(retries), "1")
            os.kill(int(pid), signal.SIGKILL)
        assert _next_run(marks, proj, "twice")[:2] == ["2", "1"]
        assert result.get(timeout=WAIT) == "survived"
        # Each loss reached the custom request's on_failure as a WorkerLostError.
        reports = hooks(marks, proj, result.id, 6)
        assert Counter(r[0] for r in reports) == {"accepted": 3, "failure": 2, "success": 1}
        assert {r[1] for r in reports if r[0] == "failure"} == {"WorkerLostError"}

        # Killed on its last allowed retry: it fails with WorkerLostError and is not
        # redelivered, although reject_on_worker_lost is on (the default).
        doomed = proj.fragile.apply_async(("doomed", 9), retries=2)
        _, delivery, pid = _next_run(marks, proj, "doomed")
        os.kill(int(pid), signal.SIGKILL)
        with pytest.raises(WorkerLostError, match="SIGKILL"):
            doomed.get(timeout=WAIT)
        assert doomed.state == states.FAILURE
        assert marks.llen(f"{proj.PREFIX}:runs:doomed") == 0  # it did not run again
        worker.wait_for_log(f"Task {proj.fragile.name}[{doomed.id}]: prefork child")
    finally:
        assert worker.stop() == 0, worker.text
