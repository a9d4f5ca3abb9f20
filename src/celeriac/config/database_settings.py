"""The settings of the database result store (``result_backend = 'db+<SQLAlchemy URL>'``).
Declared here, added to ``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Rows are ``(name, default, types, doc, extra)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

Row = tuple[str, Any, tuple[type, ...], str, dict[str, Any]]
_CALLABLE = cast(type, Callable)  # an engine callback, or an import path of one

DATABASE: list[Row] = [
    (
        "database_url",
        None,
        (str,),
        "SQLAlchemy URL of the result store when `result_backend` is `'database'` (or "
        "`'db'`); `result_backend='db+<URL>'` names it directly instead.",
        {},
    ),
    (
        "database_engine_options",
        {"pool_pre_ping": True, "pool_recycle": 3600},
        (dict,),
        "Keyword arguments for SQLAlchemy's `create_engine` (replace these defaults).",
        {},
    ),
    (
        "database_engine_callback",
        None,
        (str, _CALLABLE),
        "Called with the SQLAlchemy engine once it is made (or an import path of one): "
        "to add event listeners.",
        {},
    ),
    (
        "database_short_lived_sessions",
        False,
        (bool,),
        "Keep no database connection between operations (a new one each time): for "
        "rarely used stores whose idle connections the server drops.",
        {},
    ),
    (
        "database_table_schemas",
        None,
        (dict,),
        "Schema of each table: `{'task': ..., 'group': ..., 'chord': ...}` (the chord "
        "table takes the group table's unless named).",
        {},
    ),
    (
        "database_table_names",
        None,
        (dict,),
        "Table names: `{'task': 'celery_taskmeta', 'group': 'celery_tasksetmeta', "
        "'chord': 'celeriac_chordmeta'}` (the defaults).",
        {},
    ),
    (
        "database_create_tables_at_setup",
        True,
        (bool,),
        "Create missing tables when the store is built; off: on its first use.",
        {},
    ),
]

__all__ = ["DATABASE"]
