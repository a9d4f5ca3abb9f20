"""Shared fixtures: a fresh app per test on the in-process broker and result store."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.messages import Message


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("t", broker="memory://", backend="cache+memory://")
    try:
        yield app
    finally:
        app.close()


def take_messages(app: Celery, queue: str = "celery") -> list[tuple[Message, int]]:
    """Fetch and ack every ready message of ``queue``: (message, priority) in fetch order."""

    async def take() -> list[tuple[Message, int]]:
        taken = []
        while deliveries := await app.broker.fetch([queue], 100, timeout=0):
            for delivery in deliveries:
                taken.append((Message.decode(delivery.payload), delivery.priority))
                await delivery.ack()
        return taken

    return asyncio.run(take())
