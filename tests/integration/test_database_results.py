"""Results in PostgreSQL with a real worker: a prefork worker started from the CLI on the
Redis broker stores results through ``result_backend='db+postgresql://...'`` (in a schema
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
import sqlalchemy as sa

from celeriac import chord
from celeriac.results.database import DatabaseBackend
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess
from tests.sql_databases import postgres_schema

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    SCHEMA = os.environ["CELERIAC_TEST_SCHEMA"]
    app = Celery(
        "dbproj",
        broker=os.environ["CELERIAC_TEST_REDIS"],
        backend="db+" + os.environ["CELERIAC_TEST_DATABASE"],
        broker_transport_options={"key_prefix": PREFIX},
        database_table_schemas={"task": SCHEMA, "group": SCHEMA},
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
    """The project, imported here, with its schema in PostgreSQL and its keys in Redis."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    path = tmp_path_factory.mktemp("dbproj")
    (path / "dbproj.py").write_text(PROJECT)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    with postgres_schema() as (url, schema), pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.setenv("CELERIAC_TEST_SCHEMA", schema)
        patch.setenv("CELERIAC_TEST_DATABASE", url)
        patch.syspath_prepend(str(path))
        proj = importlib.import_module("dbproj")
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop("dbproj", None)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


@pytest.fixture(scope="module")
def proj(project: tuple[Path, ModuleType]) -> Iterator[ModuleType]:
    """A prefork worker (two children, each with its own database connections)."""
    path, module = project
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    worker = WorkerProcess.started(path, env, "-P", "prefork", "-c", "2", app="dbproj")
    try:
        yield module
    finally:
        assert worker.stop() == 0, worker.text


def test_delay_get_reads_the_result_the_worker_stored_in_postgres(proj: ModuleType) -> None:
    backend = proj.app.backend
    assert isinstance(backend, DatabaseBackend) and backend.dialect == "postgresql"
    result = proj.add.delay(2, 3)
    assert result.get(timeout=20) == 5
    assert result.successful() and result.date_done is not None
    tasks = backend.tables.tasks
    with backend._db().connect() as connection:
        status = connection.execute(
            sa.select(tasks.c.status).where(tasks.c.task_id == f"task:{result.id}")
        ).scalar()
    assert status == "READY"


def test_a_failure_comes_back_with_its_error_and_traceback(proj: ModuleType) -> None:
    result = proj.fail.delay("no stock")
    with pytest.raises(ValueError, match="no stock"):
        result.get(timeout=20)
    assert result.failed() and "ValueError" in (result.traceback or "")


def test_a_chord_joins_in_the_database_and_runs_its_body_once(proj: ModuleType) -> None:
    header = [proj.add.s(i, i) for i in range(20)]
    result = chord(header)(proj.tsum.s())
    assert result.get(timeout=30) == sum(2 * i for i in range(20))
    chords = proj.app.backend.tables.chords
    key = f"chord:{result.parent.id}"
    with proj.app.backend._db().connect() as connection:
        rows = connection.execute(
            sa.select(chords.c.member, chords.c.owner).where(chords.c.chord_key == key)
        ).all()
    members = {member for member, _ in rows if member}
    (owner,) = [owner for member, owner in rows if not member]
    assert members == {child.id for child in result.parent.results} and owner in members
