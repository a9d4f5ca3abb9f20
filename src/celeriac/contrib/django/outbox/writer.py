"""``DjangoOutboxSender``: task messages become outbox rows through a Django connection.

Inside ``transaction.atomic()`` the rows commit or roll back with the caller's; on
PostgreSQL a ``pg_notify`` (delivered at commit) wakes the relay. ``outbox(using=...)``
routes the app's calls there for a block; ``apply_async(outbox=connection)`` for one call;
``app.sender = OutboxInAtomicBlocks(app)`` for every call made inside an atomic block.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils.connection import ConnectionProxy

from celeriac._context import get_current_app
from celeriac.app.sending import (
    BrokerSender,
    RetryPolicy,
    Sender,
    register_outbox_adapter,
    sending_through,
)
from celeriac.brokers.base import OutboundMessage
from celeriac.contrib.django.outbox.models import OutboxMessage
from celeriac.outbox.table import notify_channel, outbox_table
from celeriac.outbox.writer import outbox_rows


class DjangoOutboxSender(Sender):
    """Writes task messages to the ``celeriac_outbox`` table of the database ``using``."""

    may_repeat = True

    def __init__(self, using: str = DEFAULT_DB_ALIAS) -> None:
        self.using = using

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        rows = outbox_rows(messages, time.time())
        manager = OutboxMessage.objects.using(self.using)
        manager.bulk_create([OutboxMessage(**row) for row in rows])
        connection = connections[self.using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [notify_channel(outbox_table)])

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        from asgiref.sync import sync_to_async

        await sync_to_async(self.send)(messages, policy)


@contextlib.contextmanager
def outbox(using: str = DEFAULT_DB_ALIAS, *, app: Any = None) -> Iterator[DjangoOutboxSender]:
    """Inside the block, ``app``'s task calls (the current app's when none is given) write
    to the outbox of the database ``using``, in its current transaction."""
    sender = DjangoOutboxSender(using)
    with sending_through(app if app is not None else get_current_app(), sender):
        yield sender


def _adapt(target: object) -> Sender | None:
    """``apply_async(outbox=connection)``: a Django connection (``django.db.connection``
    or ``connections[alias]``) writes through its alias."""
    if isinstance(target, (BaseDatabaseWrapper, ConnectionProxy)):
        return DjangoOutboxSender(str(target.alias))
    return None


register_outbox_adapter(_adapt)


class OutboxInAtomicBlocks(Sender):
    """``app.sender = OutboxInAtomicBlocks(app)``: every call made inside
    ``transaction.atomic()`` on the database ``using`` goes to its outbox; calls made
    outside one go to the broker as before."""

    def __init__(self, app: Any, using: str = DEFAULT_DB_ALIAS) -> None:
        self.outbox = DjangoOutboxSender(using)
        self.broker = BrokerSender(app.broker)

    def resolve(self) -> Sender:
        if connections[self.outbox.using].in_atomic_block:
            return self.outbox
        return self.broker

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        self.resolve().send(messages, policy)

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        await self.resolve().send_async(messages, policy)
