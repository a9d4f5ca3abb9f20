"""Shared fixtures: a fresh app per test on the in-process broker and result store."""

from __future__ import annotations

import asyncio
import os
import uuid
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


# -- real services ----------------------------------------------------------------------------
# Locally a missing service skips its tests with the reason; in CI
# (CELERIAC_REQUIRE_SERVICES=1) it fails them, so a broken setup can never pass as green.
REQUIRE_SERVICES = os.environ.get("CELERIAC_REQUIRE_SERVICES") == "1"
REDIS_URL = os.environ.get("CELERIAC_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def service_missing(name: str, reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{name} is required here (CELERIAC_REQUIRE_SERVICES=1) but {reason}")
    pytest.skip(f"{name} is not available: {reason}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis (db 15 by default); tests use unique key prefixes and clean up."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    return REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix unique to this test; every key under it is deleted afterwards."""
    import redis

    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
