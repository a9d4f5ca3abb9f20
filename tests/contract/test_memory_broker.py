"""The broker contract run against ``MemoryBroker``, plus what only memory can promise.

The memory-only tests cover sharing one broker between threads and event loops.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from celeriac.brokers.base import Broker, Delivery, OutboundMessage
from celeriac.brokers.memory import MemoryBroker
from celeriac.messages.wire import WireFormat
from celeriac.testing.contracts import BrokerContract, BrokerFactory
from celeriac.testing.contracts.wire import WireFormatContract


@pytest.fixture
def make_broker() -> Iterator[BrokerFactory]:
    built: list[Broker] = []

    def make(
        lease_seconds: float = 30.0, delivery_limit: int = 5, wire_format: WireFormat | None = None
    ) -> Broker:
        broker = MemoryBroker(
            lease_seconds=lease_seconds, delivery_limit=delivery_limit, wire_format=wire_format
        )
        built.append(broker)
        return broker

    yield make
    for broker in built:
        broker.close()


class TestMemoryBroker(BrokerContract, WireFormatContract):
    def another_worker(self, broker: Broker, make_broker: BrokerFactory) -> Broker:
        return broker  # its state lives in the instance: workers in one process share it


def _fetch_in_thread(broker: Broker, queue: str, results: dict[str, list[Delivery]]) -> None:
    # Each thread runs its own event loop, as several async workers in one process would.
    results[queue] = asyncio.run(broker.fetch([queue], 1, 10.0))


def test_fetches_on_several_event_loops_each_wake_on_publish() -> None:
    broker = MemoryBroker()
    results: dict[str, list[Delivery]] = {}
    threads = [
        threading.Thread(target=_fetch_in_thread, args=(broker, queue, results))
        for queue in ("a", "b")
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(0.2)  # let both fetches start waiting
    broker.publish_many([OutboundMessage("b", b"2", "id-2"), OutboundMessage("a", b"1", "id-1")])
    for thread in threads:
        thread.join(5.0)
    assert time.monotonic() - started < 3.0
    assert {queue: [d.message_id for d in got] for queue, got in results.items()} == {
        "a": ["id-1"],
        "b": ["id-2"],
    }


def test_waiting_fetch_notices_an_earlier_eta_published_while_it_waits() -> None:
    broker = MemoryBroker()

    async def scenario() -> list[Delivery]:
        # Publish after the fetch has started waiting, with an eta before its timeout.
        timer = threading.Timer(
            0.1, broker.publish, [OutboundMessage("q", b"x", "id-1", delay=0.3)]
        )
        timer.start()
        try:
            return await broker.fetch(["q"], 1, 10.0)
        finally:
            timer.join()

    started = time.monotonic()
    got = asyncio.run(scenario())
    assert [d.message_id for d in got] == ["id-1"]
    assert 0.3 <= time.monotonic() - started < 3.0


def test_publish_after_a_cancelled_fetch_is_kept() -> None:
    broker = MemoryBroker()

    async def scenario() -> None:
        task = asyncio.create_task(broker.fetch(["q"], 1, 10.0))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
    # A publish after the loop closed must neither raise nor be lost.
    broker.publish(OutboundMessage("q", b"x", "id-1"))
    assert broker.queue_length("q") == 1
