"""For tests of the SQL result store: a PostgreSQL schema and a MariaDB database of the
test's own on the local servers, dropped afterwards. Fixtures enter these with ``with``."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import service_missing

POSTGRES_URL = os.environ.get("CELERIAC_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1/test")
MARIADB_URL = os.environ.get("CELERIAC_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1/test")


def _engine(url: str, name: str) -> object:
    sqlalchemy = pytest.importorskip("sqlalchemy")
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except (sqlalchemy.exc.DBAPIError, ModuleNotFoundError) as exc:
        engine.dispose()
        service_missing(name, f"{url} did not answer ({str(exc).splitlines()[0]})")
    return engine


@contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """(URL, schema): a schema unique to this test in the test database; dropped after."""
    import sqlalchemy as sa

    engine = _engine(POSTGRES_URL, "PostgreSQL")
    assert isinstance(engine, sa.Engine)
    schema = f"celeriac_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield POSTGRES_URL, schema
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


@contextmanager
def mariadb_database() -> Iterator[str]:
    """The URL of a MariaDB database unique to this test; dropped after."""
    import sqlalchemy as sa

    engine = _engine(MARIADB_URL, "MariaDB")
    assert isinstance(engine, sa.Engine)
    name = f"celeriac_test_{uuid.uuid4().hex[:10]}"
    with engine.begin() as connection:
        connection.execute(sa.text(f"CREATE DATABASE `{name}`"))
    try:
        yield sa.make_url(MARIADB_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.execute(sa.text(f"DROP DATABASE `{name}`"))
        engine.dispose()
