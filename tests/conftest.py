"""Shared fixtures: a fresh app per test on the in-process broker and result store."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.messages import Message

# Tests marked ``alone`` run while no other test does (the suite runs in several processes);
# pytest finds these hooks by their names here.
from tests.alone import pytest_configure, pytest_runtest_protocol, pytest_unconfigure

__all__ = ["pytest_configure", "pytest_runtest_protocol", "pytest_unconfigure"]

# As in Celery, these environment variables override the broker and result settings: a
# developer's shell that exports them must not send the tests to that broker.
for _name in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "CELERY_BROKER_READ_URL",
              "CELERY_BROKER_WRITE_URL"):  # fmt: skip
    os.environ.pop(_name, None)


# -- tiers -------------------------------------------------------------------------------------
# Tests marked ``long`` (minutes of waiting for far countdowns, chaos rounds) are left out of
# the default run, which CI runs; ``--long`` (or ``CELERIAC_LONG_TESTS=1``) adds them, and
# ``-m long`` runs them alone. Each long test has a shorter sibling in the default run.
def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", help="also run the tests marked long")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = config.getoption("--long") or os.environ.get("CELERIAC_LONG_TESTS") == "1"
    if wanted or "long" in (config.getoption("markexpr") or ""):
        return
    left_out = [item for item in items if item.get_closest_marker("long")]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker("long")]


@pytest.fixture(autouse=True)
def _shared_tasks_stay_in_their_test() -> Iterator[None]:
    """A ``@shared_task`` a test imports joins every app made after it: forget it when the
    test ends, so later tests' apps register only their own tasks."""
    from celeriac.app import shared

    builders = list(shared._builders)
    yield
    shared._builders[:] = builders


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


AMQP_HOST = os.environ.get("CELERIAC_TEST_AMQP_HOST", "127.0.0.1:5672")


def rabbitmqctl(*args: str, check: bool = True) -> str:
    """Run ``rabbitmqctl`` (the machine's RabbitMQ admin tool); its output."""
    import subprocess

    done = subprocess.run(
        ["rabbitmqctl", *args], capture_output=True, text=True, timeout=60, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {done.stderr or done.stdout}")
    return done.stdout


def delete_vhost(vhost: str) -> None:
    """Delete ``vhost``, its queues first. Deleting a vhost deletes its exchanges before its
    queues, and a quorum delay queue whose messages then expire retries their at-least-once
    dead-lettering to the missing exchange for ever, which stalls the deletion and every
    vhost operation after it (RabbitMQ 3.10). Deleting the queues first discards them."""
    import asyncio
    import contextlib

    import aiormq

    listed = rabbitmqctl("list_queues", "-p", vhost, "name", "--no-table-headers", "--quiet",
                         check=False)  # fmt: skip
    names = [line.strip() for line in listed.splitlines() if line.strip()]

    async def delete_queues() -> None:
        connection = await aiormq.connect(f"amqp://guest:guest@{AMQP_HOST}/{vhost}")
        try:
            channel = await connection.channel()
            for name in names:
                try:
                    await channel.queue_delete(name)
                except aiormq.exceptions.AMQPError:  # gone meanwhile: a new channel, go on
                    channel = await connection.channel()
        finally:
            await connection.close()

    # Failing that, the vhost's deletion below removes what is left.
    with contextlib.suppress(OSError, asyncio.TimeoutError, aiormq.exceptions.AMQPError):
        if names:
            asyncio.run(asyncio.wait_for(delete_queues(), 60))
    rabbitmqctl("delete_vhost", vhost, check=False)


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A vhost of this test session's own on the local RabbitMQ (guest/guest), deleted after.

    Tests in it use unique queue names, and a unique ``namespace`` transport option where
    they touch shared names (revocations)."""
    import shutil
    import socket

    host, _, port = AMQP_HOST.partition(":")
    try:
        socket.create_connection((host, int(port or 5672)), timeout=2).close()
    except OSError as exc:
        service_missing("RabbitMQ", f"nothing answers on {AMQP_HOST} ({exc})")
    if shutil.which("rabbitmqctl") is None:
        service_missing("RabbitMQ", "rabbitmqctl (to create a test vhost) is not on PATH")
    try:
        import aiormq  # noqa: F401
    except ModuleNotFoundError:
        service_missing("RabbitMQ", "aiormq is not installed (pip install -e '.[amqp]')")
    vhost = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    try:
        rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"amqp://guest:guest@{AMQP_HOST}/{vhost}"
    finally:
        delete_vhost(vhost)


@pytest.fixture
def amqp_namespace() -> str:
    return f"t{uuid.uuid4().hex[:10]}"
