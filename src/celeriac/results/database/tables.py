"""The database result store's tables: Celery's two, and celeriac's chord table.

``celery_taskmeta`` and ``celery_tasksetmeta`` have Celery's names, columns, unique keys
and sequences, so rows written by Celery and by celeriac can live in the same tables.
Names and schemas come from ``database_table_names`` / ``database_table_schemas``.
Imports SQLAlchemy and ``celeriac.exceptions`` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from celeriac.exceptions import ImproperlyConfigured

#: The keys of database_table_names / database_table_schemas, and their default names.
DEFAULT_NAMES = {
    "task": "celery_taskmeta",
    "group": "celery_tasksetmeta",
    "chord": "celeriac_chordmeta",
}
# A key column holds a record's key ("task:<id>"): Celery's width for a task id.
KEY_LENGTH = 155

# MySQL's BLOB stops at 64 KiB and its DATETIME at whole seconds: take the larger kinds
# there (a Celery-made table with the smaller ones still works, within those limits).
_Binary = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")
_Time = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
_Id = sa.Integer().with_variant(sa.BigInteger(), "mssql")


@dataclass(frozen=True)
class Tables:
    """The three tables of one store, on a ``MetaData`` of their own."""

    metadata: sa.MetaData
    tasks: sa.Table
    groups: sa.Table
    chords: sa.Table


def _checked(setting: str, value: Mapping[str, Any] | None) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"{setting} must be a dict such as {{'task': 'my_taskmeta'}}, not "
            f"{type(value).__name__}"
        )
    unknown = sorted(str(key) for key in value if key not in DEFAULT_NAMES)
    if unknown:
        raise ImproperlyConfigured(
            f"{setting} has the key(s) {', '.join(map(repr, unknown))}; the keys are "
            f"{', '.join(map(repr, DEFAULT_NAMES))}"
        )
    for key, name in value.items():
        if name is not None and not (isinstance(name, str) and name):
            raise ImproperlyConfigured(f"{setting}[{key!r}] must be a non-empty string")
    return {key: name for key, name in value.items() if name is not None}


def build_tables(
    names: Mapping[str, Any] | None = None, schemas: Mapping[str, Any] | None = None
) -> Tables:
    """The tables under the configured names and schemas. The chord table takes the
    group table's schema unless ``schemas`` names one for it."""
    named = {**DEFAULT_NAMES, **_checked("database_table_names", names)}
    placed = _checked("database_table_schemas", schemas)
    placed.setdefault("chord", placed.get("group", ""))
    task_schema = placed.get("task") or None
    group_schema = placed.get("group") or None
    metadata = sa.MetaData()
    tasks = sa.Table(
        named["task"],
        metadata,
        sa.Column(
            "id",
            _Id,
            sa.Sequence("task_id_sequence", schema=task_schema),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("task_id", sa.String(KEY_LENGTH), unique=True),
        sa.Column("status", sa.String(50)),
        sa.Column("result", _Binary, nullable=True),
        sa.Column("date_done", _Time, nullable=True, index=True),
        sa.Column("traceback", sa.Text, nullable=True),
        sa.Column("children", sa.LargeBinary, nullable=True),
        schema=task_schema,
        sqlite_autoincrement=True,
    )
    groups = sa.Table(
        named["group"],
        metadata,
        sa.Column(
            "id",
            _Id,
            sa.Sequence("taskset_id_sequence", schema=group_schema),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("taskset_id", sa.String(KEY_LENGTH), unique=True),
        sa.Column("result", _Binary, nullable=True),
        sa.Column("date_done", _Time, nullable=True, index=True),
        schema=group_schema,
        sqlite_autoincrement=True,
    )
    chords = sa.Table(
        named["chord"],
        metadata,
        sa.Column("chord_key", sa.String(KEY_LENGTH), primary_key=True),
        # A header task's id, or empty for the chord's own row: how many tasks were added
        # to it (add_to_chord) and which member completed it.
        sa.Column("member", sa.String(KEY_LENGTH), primary_key=True),
        sa.Column("grown", sa.Integer, nullable=False, default=0, server_default="0"),
        sa.Column("owner", sa.String(KEY_LENGTH), nullable=True),
        sa.Column("date_done", _Time, nullable=False, index=True),
        schema=placed.get("chord") or None,
    )
    return Tables(metadata, tasks, groups, chords)
