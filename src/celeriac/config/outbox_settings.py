"""The ``outbox_*`` settings, declared here and added to ``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Each row is ``(name, default, types, doc,
extra)``, ``extra`` being ``Setting``'s other fields. The outbox relay reads them
(``celeriac outbox relay``, ``celeriac worker --outbox-relay``; docs/outbox.md).
"""

from __future__ import annotations

from typing import Any

_NUM = (int, float)
_OURS = {"ours": True}

OUTBOX: list[tuple[str, Any, tuple[type, ...], str, dict[str, Any]]] = [
    (
        "outbox_database_url",
        None,
        (str,),
        "SQLAlchemy URL of the database whose outbox table the relay publishes "
        "(`postgresql+psycopg://...`, `mysql+pymysql://...`, `sqlite:///...`).",
        _OURS,
    ),
    (
        "outbox_batch_size",
        500,
        (int,),
        "Rows the relay claims, publishes and marks per database transaction.",
        _OURS,
    ),
    (
        "outbox_poll_interval",
        1.0,
        _NUM,
        "Seconds the relay waits between looks at the table when it is idle; on "
        "PostgreSQL a NOTIFY at each commit wakes it sooner.",
        _OURS,
    ),
    (
        "outbox_max_attempts",
        10,
        (int,),
        "Failed publishes of a row before it is marked dead (with the last error). A lost "
        "broker connection is not counted: the relay waits for the broker.",
        _OURS,
    ),
    (
        "outbox_claim_ttl",
        86400.0,
        _NUM,
        "Seconds a worker's claim on an outbox task's id is kept (one small key per task in "
        "the broker): a second copy of the message, published by a relay that died between "
        "publishing and marking the row, does not run if it starts within this time.",
        _OURS,
    ),
    (
        "outbox_retention",
        7 * 86400.0,
        _NUM,
        "Seconds sent rows are kept before the relay deletes them; None keeps them.",
        _OURS,
    ),
]
