"""For the outbox tests: databases with an outbox table of the test's own (a PostgreSQL
schema, a MariaDB database), and a small project whose relay and worker run from the CLI."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

from tests.integration.workers import ROOT
from tests.sql_databases import mariadb_database, postgres_schema

PROJECT = textwrap.dedent(
    """
    import os

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    REDIS = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "outboxproj",
        broker=os.environ.get("CELERIAC_TEST_BROKER") or REDIS,
        broker_transport_options={"key_prefix": PREFIX},
        outbox_database_url=os.environ["CELERIAC_TEST_DATABASE"],
        outbox_poll_interval=float(os.environ.get("POLL", "0.2")),
    )
    marks = redis.Redis.from_url(REDIS)


    @app.task(name="record", ignore_result=True)
    def record(n):
        marks.rpush(f"{PREFIX}:ran", n)
    """
)


@contextmanager
def outbox_database(kind: str) -> Iterator[str]:
    """The SQLAlchemy URL of a database of the test's own with the outbox table and an
    ``orders`` table, on ``"postgresql"`` (a schema in db ``test``) or ``"mariadb"``."""
    from celeriac.outbox import metadata

    if kind == "postgresql":
        with postgres_schema() as (url, schema):
            full = sa.make_url(url).set(
                drivername="postgresql+psycopg", query={"options": f"-csearch_path={schema}"}
            )
            yield _prepared(full.render_as_string(hide_password=False), metadata)
    else:
        with mariadb_database() as url:
            yield _prepared(url, metadata)


def _prepared(url: str, metadata: sa.MetaData) -> str:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    metadata.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE orders (id INTEGER PRIMARY KEY)"))
    engine.dispose()
    return url


def write_project(path: Path) -> None:
    (path / "outboxproj.py").write_text(PROJECT)


def project_env(
    path: Path, redis_url: str, prefix: str, database: str, **extra: str
) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
        "CELERIAC_TEST_REDIS": redis_url,
        "CELERIAC_TEST_PREFIX": prefix,
        "CELERIAC_TEST_DATABASE": database,
        **extra,
    }
