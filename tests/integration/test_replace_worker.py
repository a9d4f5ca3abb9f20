"""``Task.replace`` and ``Task.add_to_chord`` with a real worker process on Redis: a
replacement in a chain, in a chord's header, a group replacing a task, and a chord grown
by its members; each gives what eager mode gives."""

from __future__ import annotations

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

from celeriac import chain, chord, group
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery, group

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "replaceproj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX},
        result_backend_transport_options={"key_prefix": PREFIX},
    )


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def collect(values):
        return values


    @app.task(bind=True)
    def becomes(self, x, kind):
        replacements = {
            "task": add.s(x, 100),
            "chain": add.s(x, 1) | add.s(10),
            "group": group(add.s(x, 1), add.s(x, 2)),
        }
        return self.replace(replacements[kind])


    @app.task(bind=True)
    def grows(self, x, times):
        for i in range(times):
            self.add_to_chord(add.s(x, i + 1))
        return x


    @app.task(bind=True)
    def ids(self):
        return [self.request.id, self.request.root_id, self.request.parent_id]


    @app.task(bind=True)
    def sends_child(self):
        return ids.delay().id
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ModuleType]]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    path = tmp_path_factory.mktemp("replaceproj")
    (path / "replaceproj.py").write_text(PROJECT)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.syspath_prepend(str(path))
        proj = importlib.import_module("replaceproj")
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop("replaceproj", None)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module", params=["threads", "prefork"])
def worker(
    request: pytest.FixtureRequest, project: tuple[Path, ModuleType]
) -> Iterator[ModuleType]:
    path, proj = project
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "CELERIAC_TEST_REDIS": REDIS_URL,
        "CELERIAC_TEST_PREFIX": proj.PREFIX,
        "PYTHONUNBUFFERED": "1",
    }
    process = WorkerProcess.started(path, env, "-P", request.param, "-c", "4", app="replaceproj")
    try:
        yield proj
    finally:
        assert process.stop() == 0, process.text


def eager(proj: ModuleType, workflow: Any) -> Any:
    proj.app.conf.task_always_eager = True
    try:
        return workflow.apply_async().get()
    finally:
        proj.app.conf.task_always_eager = False


def test_a_replaced_task_resolves_to_its_replacement(worker: ModuleType) -> None:
    p = worker
    for kind, value in (("task", 105), ("chain", 16), ("group", [6, 7])):
        result = p.becomes.delay(5, kind)
        assert result.get(timeout=20) == value == eager(p, p.becomes.s(5, kind))


def test_replace_in_a_chain_hands_its_result_on(worker: ModuleType) -> None:
    p = worker
    workflow = chain(p.add.s(1, 1), p.becomes.s(kind="chain"), p.add.s(1000))
    assert workflow.apply_async().get(timeout=20) == 1013 == eager(p, workflow)
    workflow = chain(p.add.s(2, 3), p.becomes.s(kind="group"), p.collect.s())
    assert workflow.apply_async().get(timeout=20) == [6, 7] == eager(p, workflow)


def test_replace_in_a_chord_header(worker: ModuleType) -> None:
    p = worker
    header = [
        p.becomes.s(1, "task"),
        p.becomes.s(2, "chain"),
        p.add.s(3, 4),
        p.becomes.s(3, "group"),
    ]
    workflow = chord(header, p.collect.s())
    expected = [101, 13, 7, [4, 5]]
    assert workflow.apply_async().get(timeout=20) == expected == eager(p, workflow)


def test_add_to_chord_grows_the_chord(worker: ModuleType) -> None:
    p = worker
    workflow = chord([p.grows.s(10, 2), p.add.s(1, 1), p.grows.s(20, 1)], p.collect.s())
    assert workflow.apply_async().get(timeout=20) == [10, 11, 12, 2, 20, 21]
    many = chord([p.grows.s(i * 100, 3) for i in range(20)], p.collect.s())
    values = many.apply_async().get(timeout=30)
    assert values == [i * 100 + j for i in range(20) for j in range(4)]


def test_a_call_from_a_task_carries_its_root_and_parent(worker: ModuleType) -> None:
    p = worker
    parent = p.sends_child.delay()
    child_id = parent.get(timeout=20)
    assert p.app.AsyncResult(child_id).get(timeout=20) == [child_id, parent.id, parent.id]
    first = group(p.sends_child.s(), p.sends_child.s()).apply_async()
    for member, child in zip(first.results, first.get(timeout=20), strict=True):
        assert p.app.AsyncResult(child).get(timeout=20) == [child, member.id, member.id]
