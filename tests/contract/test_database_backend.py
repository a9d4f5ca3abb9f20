"""The result-backend contract against real PostgreSQL, MariaDB and SQLite, each in a
schema, database or file of the test's own; and what only the database store promises:
Celery's tables, expiry and cleanup, polling with backoff, clear errors, the settings."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import NullPool

from celeriac import Celery, states
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import (
    BackendConnectionError,
    BackendError,
    ImproperlyConfigured,
    TimeoutError,
)
from celeriac.results.base import ResultBackend
from celeriac.results.database import DatabaseBackend, dialects
from celeriac.testing import drain
from celeriac.testing.contracts import BackendFactory, ResultBackendContract
from tests.sql_databases import mariadb_database, postgres_schema

Maker = Callable[..., DatabaseBackend]
EVERY_TABLE = ("task", "group", "chord")


def backends(url: str, **defaults: Any) -> Iterator[Maker]:
    """A maker of backends on ``url``; every one is closed afterwards."""
    made: list[DatabaseBackend] = []

    def make(**options: Any) -> DatabaseBackend:
        backend = DatabaseBackend(url, **{**defaults, **options})
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def make_postgres() -> Iterator[Maker]:
    with postgres_schema() as (url, schema):
        yield from backends(url, table_schemas=dict.fromkeys(EVERY_TABLE, schema))


@pytest.fixture
def make_mariadb() -> Iterator[Maker]:
    with mariadb_database() as url:
        yield from backends(url)


@pytest.fixture
def make_sqlite(tmp_path: Path) -> Iterator[Maker]:
    yield from backends(f"sqlite:///{tmp_path / 'results.db'}")


def _factory(make: Maker) -> BackendFactory:
    def factory(expires: float | None = 86400.0) -> ResultBackend:
        return make(expires=expires)

    return factory


class TestPostgresBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_postgres: Maker) -> BackendFactory:
        return _factory(make_postgres)


class TestMariaDBBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_mariadb: Maker) -> BackendFactory:
        return _factory(make_mariadb)


class TestSQLiteBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_sqlite: Maker) -> BackendFactory:
        return _factory(make_sqlite)


# -- what only the database store promises ----------------------------------------------------


def _id() -> str:
    return f"db-{uuid.uuid4().hex}"


def _columns(backend: DatabaseBackend, name: str, schema: str | None = None) -> set[str]:
    inspector = sa.inspect(backend._db())
    return {column["name"] for column in inspector.get_columns(name, schema)}


def test_tables_have_celerys_names_and_columns_and_rows_are_keyed_by_record_key(
    make_sqlite: Maker,
) -> None:
    backend, task_id = make_sqlite(), _id()
    backend.mark_as_done(task_id, 4)
    backend.save_group(task_id, ["a"])
    assert _columns(backend, "celery_taskmeta") == {
        "id", "task_id", "status", "result", "date_done", "traceback", "children"
    }  # fmt: skip
    assert _columns(backend, "celery_tasksetmeta") == {"id", "taskset_id", "result", "date_done"}
    assert "member" in _columns(backend, "celeriac_chordmeta")
    with backend._db().connect() as connection:
        row = connection.execute(sa.text("SELECT task_id, status FROM celery_taskmeta")).one()
        group = connection.execute(sa.text("SELECT taskset_id FROM celery_tasksetmeta")).one()
    assert tuple(row) == (f"task:{task_id}", "READY")
    assert tuple(group) == (f"group:{task_id}",)


def test_configured_names_and_schemas_are_used(postgres: tuple[str, str]) -> None:
    url, schema = postgres
    names = {"task": "jobs", "group": "job_groups", "chord": "job_chords"}
    backend = DatabaseBackend(
        url, table_names=names, table_schemas={"task": schema, "group": schema}
    )
    try:
        task_id = _id()
        backend.mark_as_done(task_id, 1)
        assert backend.chord_part_done(task_id, "a", 1)
        tables = set(sa.inspect(backend._db()).get_table_names(schema))
        assert set(names.values()) <= tables and "celery_taskmeta" not in tables
        assert backend.get_task_meta(task_id)["result"] == 1
    finally:
        backend.close()


@pytest.fixture
def postgres() -> Iterator[tuple[str, str]]:
    with postgres_schema() as found:
        yield found


# Celery 5.7's celery_taskmeta on SQLite, as Celery creates it (without result_extended).
CELERY_TASKMETA = """
CREATE TABLE celery_taskmeta (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT, task_id VARCHAR(155), status VARCHAR(50),
    result BLOB, date_done DATETIME, traceback TEXT, children BLOB, UNIQUE (task_id))
"""


def test_a_table_celery_made_is_used_as_it_is_and_its_rows_are_left_alone(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'celery.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text(CELERY_TASKMETA))
        connection.execute(
            sa.text(
                "INSERT INTO celery_taskmeta (task_id, status, result, date_done) "
                "VALUES ('celery-id', 'SUCCESS', X'34', '2026-01-01 00:00:00')"
            )
        )
    backend = DatabaseBackend(url, expires=None)
    try:
        backend.mark_as_done("celery-id", 5)
        assert backend.get_task_meta("celery-id")["result"] == 5
        with engine.connect() as connection:
            rows = connection.execute(
                sa.text("SELECT task_id, status, result FROM celery_taskmeta ORDER BY id")
            ).all()
        assert rows[0] == ("celery-id", "SUCCESS", b"4"), "Celery's row is untouched"
        assert rows[1][:2] == ("task:celery-id", "READY")
    finally:
        backend.close()
        engine.dispose()


def test_a_table_of_the_same_name_made_for_something_else_is_refused_by_name(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'other.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE celery_taskmeta (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    with pytest.raises(ImproperlyConfigured, match=r"lacks the column.*database_table_names"):
        DatabaseBackend(url)


def test_cleanup_deletes_expired_rows_of_every_table(make_mariadb: Maker) -> None:
    backend, task_id = make_mariadb(expires=1), _id()
    backend.mark_as_done(task_id, 1)
    backend.save_group(task_id, ["a"])
    backend.chord_part_done(task_id, "a", 2)
    assert backend.cleanup() == 0, "nothing has expired yet"
    # The rows were written one after another: the group row, written after the task row,
    # expires last of those two, so once it reads as missing the task reads as pending.
    deadline = time.monotonic() + 5
    while backend.restore_group(task_id) is not None:
        assert time.monotonic() < deadline, "the group did not expire within 5 s of 1 s"
        time.sleep(0.1)  # the database clock moving past the expiry is the thing under test
    assert backend.get_task_meta(task_id)["status"] == states.PENDING
    deleted = backend.cleanup()
    while deleted < 3:  # the chord counter, written last, may expire a moment later
        assert time.monotonic() < deadline, f"cleanup deleted {deleted} of 3 expired rows"
        time.sleep(0.1)
        deleted += backend.cleanup()
    assert deleted == 3
    assert backend.cleanup() == 0


def test_expires_none_keeps_rows_and_cleanup_deletes_nothing(make_sqlite: Maker) -> None:
    backend, task_id = make_sqlite(expires=None), _id()
    backend.mark_as_done(task_id, 1)
    assert backend.cleanup() == 0
    assert backend.get_task_meta(task_id)["result"] == 1


def _statements(backend: DatabaseBackend) -> list[str]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    sa.event.listen(backend._db(), "before_cursor_execute", record)
    return seen


def test_a_wait_polls_with_backoff_not_in_a_busy_loop(make_postgres: Maker) -> None:
    backend = make_postgres()
    seen = _statements(backend)
    with pytest.raises(TimeoutError):
        backend.wait_for(_id(), timeout=2)
    reads = [text for text in seen if text.lstrip().upper().startswith("SELECT")]
    # 5 ms doubling to 250 ms: 7 looks in the first 0.6 s, then 4 a second.
    assert 8 <= len(reads) <= 16, len(reads)


def test_a_waiter_sees_a_result_stored_by_another_thread_promptly(make_postgres: Maker) -> None:
    backend, task_id = make_postgres(), _id()
    stored: dict[str, float] = {}

    def finish() -> None:
        backend.mark_as_done(task_id, "late")
        stored["at"] = time.monotonic()

    timer = threading.Timer(1.0, finish)
    timer.start()
    try:
        assert backend.wait_for(task_id, timeout=10)["result"] == "late"
        seen_after = time.monotonic() - stored["at"]
    finally:
        timer.join()
    assert seen_after < backend_pause_bound(), seen_after


def backend_pause_bound() -> float:
    from celeriac.results.polling import MAX_PAUSE

    return MAX_PAUSE + 0.2  # one pause, plus a loaded machine's scheduling


def test_the_upsert_without_a_dialect_statement_updates_then_inserts(
    make_sqlite: Maker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Databases other than PostgreSQL, MySQL and SQLite take this path.
    monkeypatch.setattr(dialects, "upsert", lambda *args: None)
    backend, task_id = make_sqlite(), _id()
    backend.store_result(task_id, {"done": 1}, "PROGRESS")
    backend.mark_as_done(task_id, 2)
    assert backend.wait_for(task_id, timeout=1)["result"] == 2


def test_a_key_longer_than_the_column_is_refused_with_the_limit(make_sqlite: Maker) -> None:
    with pytest.raises(BackendError, match="keys of up to 155"):
        make_sqlite().mark_as_done("x" * 200, 1)


def test_an_unreachable_server_names_the_url_and_the_fix_but_not_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Down when the store is built: the process starts, the tables wait for the first use.
    backend = DatabaseBackend("postgresql://celeriac:s3cret-pw@127.0.0.1:1/test")
    assert "The tables are made on first use" in caplog.text and "s3cret" not in caplog.text
    try:
        with pytest.raises(BackendConnectionError) as caught:
            backend.get_task_meta("x")
        message = str(caught.value)
        assert "db+postgresql://celeriac:***@127.0.0.1:1/test" in message
        assert "s3cret" not in message and "Check that the database server" in message
    finally:
        backend.close()
    assert "s3cret" not in repr(backend)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"table_names": {"tasks": "x"}}, r"database_table_names has the key.*'tasks'"),
        ({"table_schemas": ["x"]}, "database_table_schemas must be a dict"),
        ({"engine_options": {"no_such_option": 1}}, "database_engine_options"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(
    tmp_path: Path, options: dict[str, Any], match: str
) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        DatabaseBackend(f"sqlite:///{tmp_path / 'r.db'}", **options)


def test_an_in_memory_sqlite_database_is_refused_with_the_fix() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"name a file, e.g. 'db\+sqlite:///results.db'"):
        DatabaseBackend("sqlite://")


def test_a_missing_driver_is_named_with_the_fix() -> None:
    with pytest.raises(ImproperlyConfigured, match="needs the database driver 'MySQLdb'"):
        DatabaseBackend("mysql://root@127.0.0.1/test")


# -- through the app's settings -----------------------------------------------------------------


def test_the_database_settings_reach_the_store(tmp_path: Path) -> None:
    engines: list[sa.Engine] = []
    app = Celery(
        "t",
        broker="memory://",
        backend=f"db+sqlite:///{tmp_path / 'app.db'}",
        database_table_names={"task": "app_tasks"},
        database_short_lived_sessions=True,
        database_engine_callback=engines.append,
        database_create_tables_at_setup=False,
    )
    try:
        backend = app.backend
        assert isinstance(backend, DatabaseBackend) and engines == []  # nothing made yet
        backend.mark_as_done("t1", 1)
        assert len(engines) == 1 and isinstance(engines[0].pool, NullPool)
        assert "app_tasks" in sa.inspect(engines[0]).get_table_names()
    finally:
        app.close()


def test_result_backend_database_takes_database_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'by-setting.db'}"
    app = Celery("t", broker="memory://", backend="database", database_url=url)
    try:
        app.backend.mark_as_done("t1", 1)
        assert app.backend.get_task_meta("t1")["result"] == 1
    finally:
        app.close()
    bare = Celery("t", broker="memory://", backend="db")
    with pytest.raises(ImproperlyConfigured, match="database_url is not set"):
        _ = bare.backend


def test_a_delay_get_round_trip_with_drain(tmp_path: Path) -> None:
    app = Celery("t", broker="memory://", backend=f"db+sqlite:///{tmp_path / 'drain.db'}")
    try:

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        result = add.delay(2, 3)
        assert drain(app) == 1
        assert result.get(timeout=5) == 5
    finally:
        app.close()


def test_an_unknown_result_backend_names_the_database_store_among_the_choices() -> None:
    app = Celery("t", broker="memory://", backend="mongodb://db/results")
    with pytest.raises(ImproperlyConfigured, match=r"db\+<SQLAlchemy URL> \(a SQL database\)"):
        _ = app.backend


def test_result_backend_transport_options_warn_that_they_have_no_effect(tmp_path: Path) -> None:
    app = Celery(
        "t",
        broker="memory://",
        backend=f"db+sqlite:///{tmp_path / 'opts.db'}",
        result_backend_transport_options={"key_prefix": "x"},
    )
    try:
        with pytest.warns(UnknownSettingWarning, match=r"\['key_prefix'\] has no effect"):
            assert isinstance(app.backend, DatabaseBackend)
    finally:
        app.close()
