"""``OutboxSender``: task messages become rows of the outbox table, in the caller's transaction.

A ``Sender`` (``app/sending.py``): the producer builds and encodes the messages as for the
broker, and this sender inserts them with the session or connection it was given, so they
commit or roll back with the caller's own rows. On PostgreSQL it also sends a ``NOTIFY``,
which the database delivers at commit (and drops on rollback) to wake the relay at once.
Imports the sender seam and SQLAlchemy; never a broker engine.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from celeriac._context import get_current_app
from celeriac.app.sending import RetryPolicy, Sender, register_outbox_adapter, sending_through
from celeriac.brokers.base import OutboundMessage
from celeriac.outbox.table import PENDING, notify_channel, outbox_table

_PENDING_KEY = "celeriac_outbox_pending"  # rows an AsyncSession inserts when it commits


def outbox_rows(messages: Sequence[OutboundMessage], now: float) -> list[dict[str, Any]]:
    """The rows for ``messages``: a relative delay becomes an absolute due time."""
    return [
        {
            "id": message.message_id,
            "queue": message.queue,
            "priority": message.priority,
            "payload": message.payload,
            "due_at": None if message.delay is None else now + message.delay,
            "created_at": now,
            "available_at": now,
            "status": PENDING,
            "attempts": 0,
        }
        for message in messages
    ]


def _insert(bind: Session | Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` on ``bind`` and, on PostgreSQL, ask for a wake-up at commit."""
    bind.execute(sa.insert(table), rows)
    if _dialect(bind) == "postgresql":
        bind.execute(sa.select(sa.func.pg_notify(notify_channel(table), "")))


def _dialect(bind: Session | Connection) -> str:
    engine_bind = bind.get_bind() if isinstance(bind, Session) else bind
    return str(engine_bind.dialect.name)


class OutboxSender(Sender):
    """Writes task messages to ``table`` through ``transaction``: a SQLAlchemy ``Session``,
    ``Connection`` or ``AsyncSession``. The messages reach the broker once the caller
    commits and a relay (``celeriac outbox relay``) publishes them; a rollback drops them.

    A sync ``Session`` or ``Connection`` inserts at once (an error fails the call). An
    ``AsyncSession`` cannot run SQL inside a sync ``delay()``, so its rows are inserted
    when it commits (or flushes), in the same transaction.
    """

    may_repeat = True

    def __init__(
        self, transaction: Session | Connection | AsyncSession, table: sa.Table = outbox_table
    ) -> None:
        if not isinstance(transaction, (Session, Connection, AsyncSession)):
            raise TypeError(
                f"an outbox writes through a SQLAlchemy Session, Connection or AsyncSession, "
                f"not {type(transaction).__name__}"
            )
        self.transaction = transaction
        self.table = table

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        rows = outbox_rows(messages, time.time())
        if isinstance(self.transaction, AsyncSession):
            _defer(self.transaction.sync_session, self.table, rows)
        else:
            _insert(self.transaction, self.table, rows)

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        if not isinstance(self.transaction, AsyncSession):
            self.send(messages, policy)
            return
        rows = outbox_rows(messages, time.time())
        await self.transaction.execute(sa.insert(self.table), rows)
        if self.transaction.sync_session.get_bind().dialect.name == "postgresql":
            channel = notify_channel(self.table)
            await self.transaction.execute(sa.select(sa.func.pg_notify(channel, "")))


def _defer(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Keep ``rows`` on ``session`` until its next flush or commit inserts them."""
    pending: dict[sa.Table, list[dict[str, Any]]] = session.info.setdefault(_PENDING_KEY, {})
    pending.setdefault(table, []).extend(rows)
    if not event.contains(session, "before_flush", _flush_pending):
        event.listen(session, "before_flush", _flush_pending)
        event.listen(session, "before_commit", _commit_pending)
        event.listen(session, "after_rollback", _drop_pending)


def _flush_pending(session: Session, *_: Any) -> None:
    pending: dict[sa.Table, list[dict[str, Any]]] = session.info.pop(_PENDING_KEY, {})
    for table, rows in pending.items():
        _insert(session, table, rows)


def _commit_pending(session: Session) -> None:
    _flush_pending(session)


def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)


@contextlib.contextmanager
def outbox(
    transaction: Session | Connection | AsyncSession,
    *,
    app: Any = None,
    table: sa.Table = outbox_table,
) -> Iterator[OutboxSender]:
    """Inside the block, ``app``'s task calls (the current app's when none is given) write
    their messages to the outbox through ``transaction`` instead of the broker."""
    sender = OutboxSender(transaction, table)
    with sending_through(app if app is not None else get_current_app(), sender):
        yield sender


def _adapt(target: object) -> Sender | None:
    """``apply_async(outbox=session)``: a session or connection writes to the default table."""
    if isinstance(target, (Session, Connection, AsyncSession)):
        return OutboxSender(target)
    return None


register_outbox_adapter(_adapt)
