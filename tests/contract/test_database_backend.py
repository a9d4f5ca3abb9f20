"""The result-backend contract against real PostgreSQL, MariaDB and SQLite, each in a
schema, database or file of the test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("sqlalchemy")

from celeriac.results.base import ResultBackend
from celeriac.results.database import DatabaseBackend
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
