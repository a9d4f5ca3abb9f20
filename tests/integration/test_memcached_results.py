"""Results in memcached with a real worker: a prefork worker started from the CLI on the
Redis broker stores results through ``result_backend='cache+memcached://...'`` (a memcached
of the test's own); this process sends the calls and reads the results."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac import chord, group
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess
from tests.memcached_server import memcached_server

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    app = Celery(
        "mcproj",
        broker=os.environ["CELERIAC_TEST_REDIS"],
        backend="cache+memcached://" + os.environ["CELERIAC_TEST_MEMCACHED"] + "/",
        broker_transport_options={"key_prefix": os.environ["CELERIAC_TEST_PREFIX"]},
        cache_backend_options={"timeout": 5},
    )


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def tsum(values):
        return sum(values)


    @app.task
    def fail(reason):
        raise ValueError(reason)
    """
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ModuleType]]:
    """The project, imported here, with its results in a fresh memcached, keys in Redis."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    path = tmp_path_factory.mktemp("mcproj")
    (path / "mcproj.py").write_text(PROJECT)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    with memcached_server() as address, pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.setenv("CELERIAC_TEST_MEMCACHED", address)
        patch.syspath_prepend(str(path))
        proj = importlib.import_module("mcproj")
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop("mcproj", None)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module")
def proj(project: tuple[Path, ModuleType]) -> Iterator[ModuleType]:
    """A prefork worker (two children, each with its own memcached connections)."""
    path, module = project
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess.started(path, env, "-P", "prefork", "-c", "2", app="mcproj")
    try:
        yield module
    finally:
        assert worker.stop() == 0, worker.text


def test_delay_get_reads_the_result_the_worker_stored_in_memcached(proj: ModuleType) -> None:
    from celeriac.results.memcached import KEY_PREFIX, MemcachedBackend

    backend = proj.app.backend
    assert isinstance(backend, MemcachedBackend)
    result = proj.add.delay(2, 3)
    assert result.get(timeout=20) == 5
    assert result.successful() and result.date_done is not None
    raw = backend._client.get(f"{KEY_PREFIX}task:{result.id}")
    assert raw is not None and raw[:1] == b"R", "stored in memcached, marked ready"
    result.forget()
    assert result.state == "PENDING"


def test_a_failure_comes_back_with_its_error_and_traceback(proj: ModuleType) -> None:
    result = proj.fail.delay("no stock")
    with pytest.raises(ValueError, match="no stock"):
        result.get(timeout=20)
    assert result.failed() and "ValueError" in (result.traceback or "")


def test_a_group_is_read_back_in_order(proj: ModuleType) -> None:
    result = group(proj.add.s(i, 1) for i in range(10)).apply_async()
    assert result.get(timeout=30) == [i + 1 for i in range(10)]


def test_a_chord_joins_in_memcached_and_one_header_task_applies_its_body(proj: ModuleType) -> None:
    from celeriac.results.memcached import KEY_PREFIX

    header = [proj.add.s(i, i) for i in range(20)]
    result = chord(header)(proj.tsum.s())
    assert result.get(timeout=30) == sum(2 * i for i in range(20))
    owner = proj.app.backend._client.get(f"{KEY_PREFIX}chord:{result.parent.id}:owner")
    assert owner is not None
    assert owner.decode() in {child.id for child in result.parent.results}
