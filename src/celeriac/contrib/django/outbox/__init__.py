"""The transactional outbox for Django: add ``"celeriac.contrib.django.outbox"`` to
``INSTALLED_APPS`` and migrate; then ``with outbox():`` (or ``apply_async(
outbox=connection)``) inside ``transaction.atomic()`` writes task calls to the
``celeriac_outbox`` table in that transaction, and ``celeriac outbox relay`` publishes
them (docs/outbox.md#django).

Edge layer: Django's side of ``celeriac.outbox`` (the same table, the same relay).
The writers (``outbox``, ``OutboxInAtomicBlocks``, ``DjangoOutboxSender``) load on first
use: Django imports this package before its app registry is ready, when the model cannot
be imported yet.
"""

from __future__ import annotations

from typing import Any

from celeriac.contrib.django.outbox.urls import sqlalchemy_url

__all__ = ["DjangoOutboxSender", "OutboxInAtomicBlocks", "outbox", "sqlalchemy_url"]


def __getattr__(name: str) -> Any:
    if name in ("DjangoOutboxSender", "OutboxInAtomicBlocks", "outbox"):
        from celeriac.contrib.django.outbox import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
