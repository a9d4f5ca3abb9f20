"""What differs between databases for the result store: the clock and the upsert.

Times are the database server's on PostgreSQL and MySQL/MariaDB, so the machines that
write and read results need not agree on the time; elsewhere (SQLite: one machine) they
are this process's UTC clock. Dates are naive UTC, as in Celery's tables. SQLAlchemy only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

POSTGRESQL = "postgresql"
MYSQL = ("mysql", "mariadb")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def now(dialect: str) -> sa.ColumnElement[Any]:
    """The current UTC time, as a SQL expression."""
    if dialect == POSTGRESQL:
        return sa.func.timezone("UTC", sa.func.now(), type_=sa.DateTime)
    if dialect in MYSQL:
        return sa.func.utc_timestamp(6, type_=sa.DateTime)
    return sa.literal(_utc_now(), sa.DateTime)


def ago(dialect: str, seconds: float) -> sa.ColumnElement[Any]:
    """The UTC time ``seconds`` before now, as a SQL expression."""
    if dialect == POSTGRESQL:
        return now(dialect) - sa.literal(dt.timedelta(seconds=seconds), sa.Interval)
    if dialect in MYSQL:
        micros = -round(seconds * 1_000_000)
        return sa.func.timestampadd(sa.text("MICROSECOND"), micros, now(dialect), type_=sa.DateTime)
    return sa.literal(_utc_now() - dt.timedelta(seconds=seconds), sa.DateTime)


def upsert(
    dialect: str, table: sa.Table, key: str, values: Mapping[str, Any]
) -> sa.Executable | None:
    """One statement that inserts ``values`` or, when the row whose unique column ``key``
    holds the same value exists, updates it; None where the database has no such statement
    (the caller then updates, and inserts when nothing was updated)."""
    changed = [name for name in values if name != key]
    if dialect in (POSTGRESQL, "sqlite"):
        make = postgresql.insert if dialect == POSTGRESQL else sqlite.insert
        stmt = make(table).values(**values)
        return stmt.on_conflict_do_update(
            index_elements=[table.c[key]], set_={name: stmt.excluded[name] for name in changed}
        )
    if dialect in MYSQL:
        my = mysql.insert(table).values(**values)
        return my.on_duplicate_key_update({name: my.inserted[name] for name in changed})
    return None
