"""The outbox table: one row per task message written in the caller's transaction.

SQLAlchemy Core only (no ORM mapping), so it sits beside any project's models: include
``metadata`` in Alembic's ``target_metadata``, or build a table of another name with
``make_table``. Imports SQLAlchemy and nothing from celeriac.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

#: The table's name when none is given.
DEFAULT_TABLE = "celeriac_outbox"

# A row's life: written PENDING, then SENT once the relay's publish is committed, or DEAD
# after too many failed publishes (``last_error`` says why).
PENDING = "pending"
SENT = "sent"
DEAD = "dead"

# MySQL's BLOB stops at 64 KiB; a task message may be larger.
_PAYLOAD = sa.LargeBinary().with_variant(mysql.LONGBLOB(), "mysql", "mariadb")

#: The ``MetaData`` holding the default table (for Alembic's ``target_metadata``).
metadata = sa.MetaData()


def make_table(name: str = DEFAULT_TABLE, meta: sa.MetaData | None = None) -> sa.Table:
    """The outbox table called ``name`` in ``meta`` (a new ``MetaData`` when none)."""
    table = sa.Table(
        name,
        meta if meta is not None else sa.MetaData(),
        # The task id: a row published twice is one task, and runs once.
        sa.Column("id", sa.String(155), primary_key=True),
        sa.Column("queue", sa.String(255), nullable=False),
        sa.Column("priority", sa.SmallInteger, nullable=False, default=0),
        sa.Column("payload", _PAYLOAD, nullable=False),
        # When the task is due (unix time), absolute: the relay turns it into the delay
        # left at publish time, so a message that waited in the table is not delayed twice.
        sa.Column("due_at", sa.Double, nullable=True),
        sa.Column("created_at", sa.Double, nullable=False),
        # The relay takes pending rows whose available_at has passed (later after a failure).
        sa.Column("available_at", sa.Double, nullable=False),
        sa.Column("status", sa.String(8), nullable=False, default=PENDING),
        sa.Column("attempts", sa.Integer, nullable=False, default=0),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("sent_at", sa.Double, nullable=True),
    )
    sa.Index(f"ix_{name}_status_available", table.c.status, table.c.available_at)
    return table


#: The default table, ``celeriac_outbox``, in ``metadata``.
outbox_table = make_table(DEFAULT_TABLE, metadata)


def notify_channel(table: sa.Table) -> str:
    """The PostgreSQL ``NOTIFY`` channel a writer signals and the relay listens on."""
    return f"{table.name}_rows"
