"""Canvas with real worker processes, on Redis and on RabbitMQ (results in Redis): the
tutorial workflows, a matrix of nested forms (the same results as eager mode), a 1,000-task
chord and a failing chord.

The workflows are sent from this process; one worker (threads) started from the CLI runs
them all, and the prefork pool runs the core forms too (chains and chords advance from
inside child processes there).
"""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from celeriac import GroupResult, chain, chord, group
from celeriac.exceptions import ChordError
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess, fresh_queues

CANVAS_PROJECT = textwrap.dedent(
    """
    import os

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
        "canvasproj", broker=BROKER, backend=URL,
        broker_transport_options=options,
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    marks = redis.Redis.from_url(URL)


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def sub(x, y):
        return x - y


    @app.task
    def tsum(values):
        return sum(values)


    @app.task
    def fail(*args):
        raise ValueError(f"bad {args}")


    @app.task
    def check(n):
        return n % 2 == 0


    @app.task
    def fetch_data(user_id):
        return {"user": user_id, "items": 3}


    @app.task
    def process_data(data):
        return data["items"] * 10


    @app.task
    def send_notification(total, email):
        return f"{email}: {total}"


    @app.task
    def process_image(path, operations):
        return f"{path}:{'+'.join(operations)}"


    @app.task
    def fetch_partial_data(shard):
        return [shard * 10 + i for i in range(3)]


    @app.task
    def merge_results(parts):
        return [value for part in parts for value in part]


    @app.task
    def noop(i):
        return i


    @app.task(ignore_result=True)
    def quiet(i):
        return i


    @app.task
    def counted_body(values):
        marks.rpush(f"{PREFIX}:body-runs", len(values))
        return len(values)


    @app.task
    def on_chord_error(request, exc, traceback):
        marks.rpush(f"{PREFIX}:errbacks", f"{request.id}|{type(exc).__name__}|{exc}")
    """
)


@pytest.fixture(scope="module", params=["redis", "amqp"])
def canvas_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Path, ModuleType]]:
    """The project, imported here; its broker is Redis or RabbitMQ (results in Redis)."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    broker = request.getfixturevalue("amqp_url") if request.param == "amqp" else ""
    path = tmp_path_factory.mktemp("canvasproj")
    (path / "canvasproj.py").write_text(CANVAS_PROJECT)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    saved = {k: v for k, v in sys.modules.items() if k == "canvasproj"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.setenv("CELERIAC_TEST_BROKER", broker)
        patch.setenv("CELERIAC_TEST_NAMESPACE", f"t{uuid.uuid4().hex[:10]}")
        patch.syspath_prepend(str(path))
        proj = importlib.import_module("canvasproj")
        fresh_queues(proj.app)
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop("canvasproj", None)
            sys.modules.update(saved)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module")
def worker(canvas_project: tuple[Path, ModuleType]) -> Iterator[ModuleType]:
    """One threads worker for the module's tests: ``-A canvasproj``."""
    path, proj = canvas_project
    process = _worker(path, proj, "threads", 8)
    try:
        yield proj
    finally:
        assert process.stop() == 0, process.text


def _worker(path: Path, proj: ModuleType, pool: str, concurrency: int) -> WorkerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "CELERIAC_TEST_REDIS": REDIS_URL,
        "CELERIAC_TEST_PREFIX": proj.PREFIX,
        "CELERIAC_TEST_BROKER": os.environ["CELERIAC_TEST_BROKER"],
        "CELERIAC_TEST_NAMESPACE": os.environ["CELERIAC_TEST_NAMESPACE"],
        "PYTHONUNBUFFERED": "1",
    }
    return WorkerProcess.started(path, env, "-P", pool, "-c", str(concurrency), app="canvasproj")


def eager(proj: ModuleType, workflow: Any) -> Any:
    """The same workflow run in eager mode, in this process."""
    proj.app.conf.task_always_eager = True
    try:
        return workflow.apply_async().get()
    finally:
        proj.app.conf.task_always_eager = False


# -- tutorial workflows --------------------------------------------------------------------
def test_tutorial_signatures_chain_and_pipe(worker: ModuleType) -> None:
    p = worker
    assert chain(p.add.s(2, 2), p.add.s(4), p.add.s(8))().get(timeout=20) == 16
    assert (p.add.s(2, 2) | p.add.s(4) | p.add.s(8))().get(timeout=20) == 16
    assert p.add.s(2, 2).set(countdown=1).set(expires=30).delay().get(timeout=20) == 4
    assert p.add.signature(args=(1,), kwargs={"y": 2}, options={}).delay().get(timeout=20) == 3
    assert p.sub.s(2).delay(10).get(timeout=20) == 8  # call-time args first, as in Celery


def test_tutorial_group_of_immutable_checks(worker: ModuleType) -> None:
    numbers = [1, 2, 3, 4]
    result = group(worker.check.si(n) for n in numbers)()
    assert result.get(timeout=20) == [False, True, False, True]
    assert result.ready() and result.successful() and result.completed_count() == 4


def test_email_project_chain_group_and_chord(worker: ModuleType) -> None:
    p = worker
    workflow = chain(p.fetch_data.s(7), p.process_data.s(), p.send_notification.s("user@test.com"))
    assert workflow.apply_async().get(timeout=20) == "user@test.com: 30"
    batch = group(p.process_image.s(f"img_{i}.jpg", ["resize", "watermark"]) for i in range(100))
    images = batch.apply_async().get(timeout=30)
    assert images == [f"img_{i}.jpg:resize+watermark" for i in range(100)]
    shards = [0, 1, 2]
    workflow = chord([p.fetch_partial_data.s(shard) for shard in shards], p.merge_results.s())
    assert workflow.apply_async().get(timeout=20) == [0, 1, 2, 10, 11, 12, 20, 21, 22]


# -- nested forms: worker == eager == Celery's result ---------------------------------------
NESTED = {
    "group in chain": (
        lambda p: chain(p.add.s(1, 1), group(p.add.s(1), p.add.s(2)), p.tsum.s()),
        7,
    ),
    "chain in group": (
        lambda p: group(p.add.s(1, 1) | p.add.s(1), p.add.s(2, 2) | p.sub.s(1)),
        [3, 3],
    ),
    "chord in chain": (
        lambda p: chain(p.add.s(1, 1), chord([p.add.s(1), p.add.s(2)], p.tsum.s()), p.add.s(100)),
        107,
    ),
    "chain as chord body": (
        lambda p: chord([p.add.s(1, 1), p.add.s(2, 2)], p.tsum.s() | p.sub.s(1)),
        5,
    ),
    "group of chords": (
        lambda p: group(chord([p.add.s(i, j) for j in range(3)], p.tsum.s()) for i in range(2)),
        [3, 6],
    ),
    "chain ending in group": (
        lambda p: chain(p.add.s(1, 1), group(p.add.s(1), p.sub.s(2))),
        [3, 0],
    ),
    "group | task is a chord": (lambda p: group(p.add.s(i, 1) for i in range(3)) | p.tsum.s(), 6),
    "map, starmap, chunks": (
        lambda p: group(
            p.tsum.map([[1, 2], [3]]), p.add.starmap([(1, 2)]), p.add.chunks([(1, 1)] * 3, 2)
        ),
        [[3, 3], [3], [[2, 2], [2]]],
    ),
}


@pytest.mark.parametrize("name", list(NESTED))
def test_nested_forms_match_eager_mode_and_celery(worker: ModuleType, name: str) -> None:
    build, expected = NESTED[name]
    assert build(worker).apply_async().get(timeout=30) == expected
    assert eager(worker, build(worker)) == expected


# -- chords at scale and chords that fail ---------------------------------------------------
def test_a_chord_of_1000_header_tasks_runs_its_body_once(worker: ModuleType) -> None:
    p = worker
    p.marks.delete(f"{p.PREFIX}:body-runs")
    result = chord([p.noop.s(i) for i in range(1000)], p.counted_body.s())()
    assert result.get(timeout=120) == 1000
    assert p.marks.lrange(f"{p.PREFIX}:body-runs", 0, -1) == [b"1000"]
    assert result.parent.completed_count() == 1000


def test_a_failing_header_task_runs_the_errback_once_and_never_the_body(
    worker: ModuleType,
) -> None:
    p = worker
    p.marks.delete(f"{p.PREFIX}:body-runs", f"{p.PREFIX}:errbacks")
    body = p.counted_body.s().on_error(p.on_chord_error.s())
    result = chord([p.add.s(1, 1), p.fail.s(2), p.add.s(3, 3)], body)()
    with pytest.raises(ChordError, match="Dependency"):
        result.get(timeout=20)
    calls = p.marks.blpop(f"{p.PREFIX}:errbacks", 20)
    assert calls is not None
    errback_id, kind, text = calls[1].decode().split("|", 2)
    assert (errback_id, kind) == (result.id, "ChordError") and "ValueError" in text
    assert result.state == "FAILURE" and result.parent.failed()
    # The errback ran in the worker before the body's FAILURE was stored: nothing more.
    assert p.marks.llen(f"{p.PREFIX}:errbacks") == 0
    assert p.marks.llen(f"{p.PREFIX}:body-runs") == 0


def test_an_expired_header_task_fails_the_chord(worker: ModuleType) -> None:
    p = worker
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    header = [p.add.s(1, 1), p.add.s(2, 2).set(expires=past)]
    result = chord(header, p.tsum.s())()
    with pytest.raises(ChordError, match="TaskRevokedError"):
        result.get(timeout=20)


def test_an_expired_header_task_that_ignores_results_still_fails_the_chord_clearly(
    worker: ModuleType,
) -> None:
    p = worker
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    header = [p.quiet.s(1), p.quiet.s(2).set(expires=past)]
    with pytest.raises(ChordError, match="TaskRevokedError"):  # not "PENDING"
        chord(header, p.tsum.s())().get(timeout=20)


def test_a_failing_chain_step_fails_the_chain_result_at_once(worker: ModuleType) -> None:
    p = worker
    result = chain(p.add.s(1, 1), p.fail.s(), p.add.s(1))()
    with pytest.raises(ValueError, match="bad"):
        result.get(timeout=20)
    assert result.parent.parent.get(timeout=5) == 2


def test_group_results_are_saved_and_restored_by_id(worker: ModuleType) -> None:
    p = worker
    result = group(p.add.s(i, i) for i in range(5))()
    result.save()
    restored = GroupResult.restore(result.id, app=p.app)
    assert restored is not None
    assert restored.join(timeout=20) == [0, 2, 4, 6, 8]


def test_link_and_link_error_on_plain_tasks(worker: ModuleType) -> None:
    p = worker
    p.marks.delete(f"{p.PREFIX}:errbacks")
    callback = p.add.s(10)
    following = callback.freeze()
    p.add.apply_async((1, 2), link=callback)
    assert following.get(timeout=20) == 13
    failed = p.fail.apply_async((5,), link_error=p.on_chord_error.s())
    calls = p.marks.blpop(f"{p.PREFIX}:errbacks", 20)
    assert calls is not None and calls[1].decode().startswith(f"{failed.id}|ValueError|")


def test_prefork_children_advance_chains_and_complete_chords(
    canvas_project: tuple[Path, ModuleType],
) -> None:
    path, p = canvas_project
    process = _worker(path, p, "prefork", 2)
    try:
        assert chain(p.add.s(2, 2), p.add.s(4), p.add.s(8))().get(timeout=30) == 16
        workflow = chord([p.noop.s(i) for i in range(20)], p.tsum.s()) | p.add.s(1)
        assert workflow.apply_async().get(timeout=30) == 191
    finally:
        assert process.stop() == 0, process.text
