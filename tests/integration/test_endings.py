"""Tasks that end without their body finishing still tell what follows them: a task
stopped at its hard time limit, revoked, or lost with its process fails the rest of its
chain, calls its errbacks once, and joins its chord, so the chord ends instead of hanging.

Real CLI workers on every pool, on Redis and on RabbitMQ (results in Redis). Errbacks
report through a Redis list, so the tests wait on BLPOP, never on sleeps.
"""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac import chord, states
from celeriac.exceptions import ChordError, TimeLimitExceeded
from tests.conftest import REDIS_URL
from tests.integration.workers import ROOT, WorkerProcess, imported_project

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": PREFIX}
    app = Celery(
        "endproj", broker=BROKER, backend=URL, broker_transport_options=options,
        result_backend_transport_options={"key_prefix": PREFIX}, task_delivery_limit=2,
    )
    marks = redis.Redis.from_url(URL)


    @app.task
    def slow(seconds):
        for _ in range(int(seconds * 20)):  # short sleeps: a thread's limit lands promptly
            time.sleep(0.05)
        return "finished"


    @app.task
    def one(x):
        return x


    @app.task
    def after(value):
        return f"after {value}"


    @app.task
    def total(values):
        return sum(values)


    @app.task
    def dies():
        os._exit(1)  # kills the process that runs it, every time


    @app.task
    def on_err(request, exc, traceback):
        marks.rpush(f"{PREFIX}:errbacks", f"{request.id}|{type(exc).__name__}")
    """
)


@pytest.fixture(scope="module", params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModuleType]]:
    with imported_project(request, tmp_path_factory, "endproj", PROJECT) as found:
        yield found


def start(path: Path, proj: ModuleType, pool: str) -> WorkerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    return WorkerProcess.started(path, env, "-P", pool, "-c", "2", app="endproj")


def errbacks(proj: ModuleType, count: int, timeout: float = 20) -> list[str]:
    """The next ``count`` errback reports, in order (waits for each)."""
    client = redis.Redis.from_url(REDIS_URL)
    try:
        found = []
        for _ in range(count):
            item = client.blpop([f"{proj.PREFIX}:errbacks"], timeout=timeout)
            assert item is not None, f"errback {len(found) + 1} of {count} never ran: {found}"
            found.append(item[1].decode())
        return found
    finally:
        client.close()


@pytest.mark.parametrize("pool", ["prefork", "threads", "asyncio"])
def test_a_task_stopped_at_its_hard_limit_fails_its_chain_errback_and_chord(
    project: tuple[Path, ModuleType], pool: str
) -> None:
    path, proj = project
    worker = start(path, proj, pool)
    try:
        # Given a chain whose first task has an errback and is stopped at its hard limit
        limited = proj.slow.si(10).set(time_limit=1).on_error(proj.on_err.s())
        last = (limited | proj.after.s()).apply_async()
        # and a chord with such a member
        member = proj.slow.s(10).set(time_limit=1)
        body = proj.total.s().on_error(proj.on_err.s())
        chord_result = chord([proj.one.s(1), member], body).apply_async()

        # Then the stopped task failed with the limit, its errback ran once,
        with pytest.raises(TimeLimitExceeded):
            last.parent.get(timeout=20)
        # the rest of the chain failed instead of staying PENDING,
        assert last.get(timeout=20, propagate=False) is not None
        assert last.state == states.FAILURE
        # and the chord ended with its body's errback instead of hanging
        with pytest.raises(ChordError):
            chord_result.get(timeout=20)
        reports = sorted(errbacks(proj, 2))
        assert sorted(r.split("|")[0] for r in reports) == sorted([last.parent.id, chord_result.id])
        assert any(r == f"{last.parent.id}|TimeLimitExceeded" for r in reports), reports
    finally:
        assert worker.stop() == 0, worker.text


def test_a_chord_whose_member_is_revoked_ends_with_its_errback(
    project: tuple[Path, ModuleType],
) -> None:
    path, proj = project
    workflow = chord([proj.one.s(1), proj.one.s(2)], proj.total.s().on_error(proj.on_err.s()))
    result = workflow.freeze()
    member_id = workflow.tasks[1].id
    proj.app.control.revoke(member_id)
    workflow.apply_async()
    worker = start(path, proj, "threads")
    try:
        with pytest.raises(ChordError, match=r"REVOKED|revoked"):
            result.get(timeout=20)
        assert errbacks(proj, 1) == [f"{result.id}|ChordError"]
        assert proj.app.AsyncResult(member_id).state == states.REVOKED
    finally:
        assert worker.stop() == 0, worker.text


def test_a_chord_whose_member_keeps_killing_its_process_ends_with_its_errback(
    project: tuple[Path, ModuleType],
) -> None:
    path, proj = project
    result = chord(
        [proj.one.s(1), proj.dies.si()], proj.total.s().on_error(proj.on_err.s())
    ).apply_async()
    worker = start(path, proj, "prefork")
    try:
        with pytest.raises(ChordError):
            result.get(timeout=30)
        assert errbacks(proj, 1) == [f"{result.id}|ChordError"]
    finally:
        assert worker.stop() == 0, worker.text
