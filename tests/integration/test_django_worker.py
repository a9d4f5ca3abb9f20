"""A Django project set up as in Celery's guide, with only the import changed, run by a
real ``celeriac -A proj worker`` on Redis, with its models in PostgreSQL (a schema of
the test's own): tasks find their models, ``autodiscover_tasks()`` finds them, calls sent
on commit wait for the commit, and the worker's database connections survive the server
dropping them and are never shared with prefork children."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.django_project import postgres_databases, project_env, run_client, write_project
from tests.integration.workers import WorkerProcess
from tests.sql_databases import postgres_schema

pytest.importorskip("django")
psycopg = pytest.importorskip("psycopg")


@pytest.fixture
def schema() -> Iterator[tuple[str, str]]:
    with postgres_schema() as found:
        yield found


def _project(
    tmp_path: Path, schema: tuple[str, str], redis_url: str, prefix: str, **database: Any
) -> tuple[Path, dict[str, str]]:
    url, name = schema
    project = write_project(tmp_path)
    env = project_env(
        project,
        postgres_databases(url, name, **database),
        CELERIAC_TEST_BROKER_URL=redis_url,
        CELERIAC_TEST_RESULTS_URL=redis_url,
        CELERIAC_TEST_PREFIX=prefix,
    )
    assert run_client(project, env, "migrate") == 3
    return project, env


def _sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as db:
        return list(db.execute(query, params).fetchall())


def test_tasks_importing_models_are_found_and_run(
    tmp_path: Path, schema: tuple[str, str], redis_url: str, redis_prefix: str
) -> None:
    # Given a worker of the project (shop/tasks.py imports its models at the top)
    project, env = _project(tmp_path, schema, redis_url, redis_prefix)
    worker = WorkerProcess.started(project, env, "-P", "threads", "-c", "2")
    try:
        # Then autodiscover_tasks() found shop.tasks, and its task reads the database
        assert "shop.tasks.count_orders" in worker.text
        assert run_client(project, env, "read") == 3
    finally:
        worker.stop()
    assert "AppRegistryNotReady" not in worker.text


def test_a_call_on_commit_is_sent_after_the_commit_and_never_on_rollback(
    tmp_path: Path, schema: tuple[str, str], redis_url: str, redis_prefix: str
) -> None:
    project, env = _project(tmp_path, schema, redis_url, redis_prefix)
    worker = WorkerProcess.started(project, env, "-P", "threads", "-c", "2")
    try:
        committed = run_client(project, env, "commit")
        rolled_back = run_client(project, env, "rollback")
    finally:
        worker.stop()
    # Committed: the id was known inside the block, nothing was sent before the commit,
    # then exactly that id was sent and the task read the committed row.
    assert committed["is_django_task"]
    assert committed["sent_inside"] == []
    assert committed["sent_after"] == [committed["id"]]
    assert committed["value"] == 42
    # Rolled back: an id was handed out, its message never sent (only the probe was).
    assert len(rolled_back["ids"]) == 1
    assert rolled_back["ids"][0] not in rolled_back["sent"]
    assert len(rolled_back["sent"]) == 1
    assert rolled_back["after"] == 4  # the three orders and the committed one


@pytest.mark.parametrize(
    "database",
    [
        pytest.param({}, id="CONN_MAX_AGE=0"),
        pytest.param({"CONN_MAX_AGE": None, "CONN_HEALTH_CHECKS": True}, id="persistent"),
    ],
)
def test_a_connection_the_server_dropped_between_tasks_is_reopened(
    tmp_path: Path,
    schema: tuple[str, str],
    redis_url: str,
    redis_prefix: str,
    database: dict[str, Any],
) -> None:
    project, env = _project(tmp_path, schema, redis_url, redis_prefix, **database)
    worker = WorkerProcess.started(project, env, "-P", "solo")
    try:
        # Given a task that used a connection
        first = run_client(project, env, "pid")
        # When the server ends that session between two tasks
        _sql(schema[0], "SELECT pg_terminate_backend(%s)", first["backend"])
        # Then the next task in the same process runs, on a new connection
        second = run_client(project, env, "pid")
    finally:
        worker.stop()
    assert second["pid"] == first["pid"]
    assert second["backend"] != first["backend"]
    assert "terminating connection" not in worker.text


def test_prefork_children_open_connections_of_their_own(
    tmp_path: Path, schema: tuple[str, str], redis_url: str, redis_prefix: str
) -> None:
    # Given a project that opens a connection while it loads, in the worker's parent
    project, env = _project(tmp_path, schema, redis_url, redis_prefix, CONN_MAX_AGE=None)
    held = {**env, "HOLD_PARENT_CONNECTION": "1"}
    worker = WorkerProcess.started(project, held, "-P", "prefork", "-c", "2")
    try:
        url, name = schema
        (parent,) = _sql(url, f'SELECT value FROM "{name}".shop_mark WHERE name = %s', "parent")
        seen = [run_client(project, env, "pid") for _ in range(4)]
        alive = _sql(url, "SELECT pid FROM pg_stat_activity WHERE pid = %s", parent[0])
    finally:
        worker.stop()
    # Then the children opened connections of their own and left the parent's session
    # alone (closing an inherited connection politely would have ended it).
    assert all(item["backend"] != parent[0] for item in seen)
    assert alive == [(parent[0],)]
    assert "Signal handler" not in worker.text


def test_a_forked_child_leaves_the_inherited_session_alone(
    tmp_path: Path, schema: tuple[str, str], redis_url: str, redis_prefix: str
) -> None:
    """What a prefork child does with a connection it inherits (worker_process_init)."""
    project, env = _project(tmp_path, schema, redis_url, redis_prefix, CONN_MAX_AGE=None)
    seen = run_client(project, env, "fork")
    assert seen["status"] == 0
    assert seen["child"] != seen["before"]  # the child opened a session of its own
    assert seen["after"] == seen["before"]  # and the parent's still works
