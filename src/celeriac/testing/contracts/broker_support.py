"""What every part of the broker contract shares: the factory protocol, the event-loop
runner, the suite's base class, fresh names, and fetching helpers.

Imports ``celeriac.brokers.base`` and the stdlib; never an engine. Timing is real time
(engines use server time): helpers await a ``fetch`` with a timeout rather than sleep.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

from celeriac.brokers.base import Broker, Delivery, OutboundMessage

SHORT_LEASE = 0.5  # seconds; long enough for a few round trips to a local server
SLACK = 2.0  # how late an engine may notice a due eta or an expired lease
EARLY = 0.05  # tolerance for "not before": clock granularity, server vs local clock


class BrokerFactory(Protocol):
    """Builds a broker for one test; the fixture providing it cleans up afterwards."""

    def __call__(self, lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker: ...


AsyncTest = Callable[[Any, BrokerFactory], Coroutine[Any, Any, None]]


def in_event_loop(test: AsyncTest) -> Callable[[Any, BrokerFactory], None]:
    """Run an async test body with ``asyncio.run``: a plain sync test, no pytest-asyncio."""

    @functools.wraps(test)
    def run(self: Any, make_broker: BrokerFactory) -> None:
        made: list[Broker] = []

        def tracking(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            broker = make_broker(lease_seconds=lease_seconds, delivery_limit=delivery_limit)
            made.append(broker)
            return broker

        async def body() -> None:
            try:
                await test(self, tracking)
            finally:  # a broker used on a loop releases its async face on that loop
                for broker in made:
                    await broker.close_async()

        asyncio.run(body())

    return run


class BrokerSuite:
    """The base of every part of the contract: what an engine's test class may override."""

    def another_worker(self, broker: Broker, make_broker: BrokerFactory) -> Broker:
        """A second worker's handle on the same queues as ``broker``: its own connection, or
        the same instance for an engine whose state lives in one process."""
        return make_broker() if broker.shares_across_processes else broker


def new_queue() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def new_key(what: str) -> str:
    return f"contract-{what}-{uuid.uuid4().hex[:12]}"


def msg(queue: str, n: int, priority: int = 0, delay: float | None = None) -> OutboundMessage:
    """Message number ``n``: id ``id-<n>``, payload ``payload-<n>``."""
    return OutboundMessage(
        queue, f"payload-{n}".encode(), f"id-{n}", priority=priority, delay=delay
    )


def ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [delivery.message_id for delivery in deliveries]


async def collect(
    broker: Broker, queues: Sequence[str], count: int, timeout: float = SLACK
) -> list[Delivery]:
    """Fetch until ``count`` deliveries arrived; an engine may hand out fewer per call."""
    got: list[Delivery] = []
    give_up = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < give_up:
        got += await broker.fetch(queues, count - len(got), give_up - time.monotonic())
    assert len(got) == count, f"expected {count} deliveries, got {len(got)}"
    return got


async def expect_order(broker: Broker, queue: str, expected: list[str]) -> None:
    """Fetch ``expected`` in exactly that order, acking each."""
    got = await collect(broker, [queue], len(expected))
    assert ids(got) == expected
    for delivery in got:
        assert await delivery.ack() is True
