"""Publishing and fetching: order, priority, limits, waking, fair dispatch.

Part of ``BrokerContract`` (``contracts.broker``); the public ``Broker`` API only.
"""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from celeriac.brokers.base import OutboundMessage
from celeriac.testing.contracts.broker_support import (
    SLACK,
    BrokerFactory,
    BrokerSuite,
    collect,
    expect_order,
    ids,
    in_event_loop,
    msg,
    new_queue,
)


class PublishFetchContract(BrokerSuite):
    @in_event_loop
    async def test_round_trip_keeps_payload_and_message_id(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish(OutboundMessage(queue, b"hello \xe2\x98\x83", "msg-1", priority=3))
        [delivery] = await collect(broker, [queue], 1)
        assert delivery.payload == b"hello \xe2\x98\x83"
        assert (delivery.message_id, delivery.queue) == ("msg-1", queue)
        assert (delivery.priority, delivery.delivery_count) == (3, 1)
        assert await delivery.ack() is True

    @in_event_loop
    async def test_fifo_within_a_queue(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        for n in range(10):
            broker.publish(msg(queue, n))
        await expect_order(broker, queue, [f"id-{n}" for n in range(10)])

    @in_event_loop
    async def test_higher_priority_first_and_fifo_within_a_priority(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        priorities = [0, 5, 9, 5, 0, 9]
        for n, priority in enumerate(priorities):
            broker.publish(msg(queue, n, priority=priority))
        broker.flush()  # all held before the first fetch, or the first would come out first
        if not broker.supports_priorities:  # FIFO, each message still carrying its priority
            got = await collect(broker, [queue], 6)
            assert ids(got) == [f"id-{n}" for n in range(6)]
            assert [d.priority for d in got] == priorities
            return
        await expect_order(broker, queue, ["id-2", "id-5", "id-1", "id-3", "id-0", "id-4"])

    @in_event_loop
    async def test_flush_returns_once_every_publish_is_held(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        for n in range(40):
            broker.publish(msg(queue, n))
        for n in range(40, 60):
            await broker.publish_async(msg(queue, n))
        broker.flush()
        assert broker.queue_length(queue) == 60
        await broker.flush_async()  # nothing left to wait for
        await expect_order(broker, queue, [f"id-{n}" for n in range(60)])

    @in_event_loop
    async def test_publish_many_keeps_order(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, n) for n in range(5)])
        await broker.publish_many_async([msg(queue, n) for n in range(5, 10)])
        await expect_order(broker, queue, [f"id-{n}" for n in range(10)])

    @in_event_loop
    async def test_fetch_returns_at_most_limit(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, n) for n in range(5)])
        first = await broker.fetch([queue], 2, SLACK)
        assert 1 <= len(first) <= 2
        rest = await collect(broker, [queue], 5 - len(first))
        assert sorted(ids(first + rest)) == [f"id-{n}" for n in range(5)]

    @in_event_loop
    async def test_a_fetcher_holds_no_more_than_it_asked_for(
        self, make_broker: BrokerFactory
    ) -> None:
        # Fair dispatch: what a worker fetched (or read ahead) never keeps the rest from another.
        holder, queue = make_broker(), new_queue()
        other = self.another_worker(holder, make_broker)
        holder.publish_many([msg(queue, n) for n in range(10)])
        held = await collect(holder, [queue], 3)
        rest = await collect(other, [queue], 7)
        assert sorted(ids(held + rest)) == sorted(f"id-{n}" for n in range(10))

    @in_event_loop
    async def test_stop_fetching_gives_back_what_was_read_ahead_uncounted(
        self, make_broker: BrokerFactory
    ) -> None:
        leaving, queue = make_broker(), new_queue()
        staying = self.another_worker(leaving, make_broker)
        held = await leaving.fetch([queue], 4, 0.2)  # an engine may start reading ahead
        assert held == []
        leaving.publish_many([msg(queue, n) for n in range(4)])
        held = await collect(leaving, [queue], 1)
        await leaving.stop_fetching()  # a warm shutdown: its one task still runs
        rest = await collect(staying, [queue], 3)
        assert sorted(ids(held + rest)) == [f"id-{n}" for n in range(4)]
        assert [d.delivery_count for d in rest] == [1, 1, 1], "never handed out: not counted"
        assert await held[0].ack() is True

    @in_event_loop
    async def test_fetch_with_nothing_ready_returns_empty(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        assert await broker.fetch([queue], 10, 0) == []
        started = time.monotonic()
        assert await broker.fetch([queue], 10, 0.3) == []
        assert time.monotonic() - started >= 0.15, "an empty fetch must wait, not spin"

    @in_event_loop
    async def test_fetch_wakes_when_another_thread_publishes(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        # The timer fires while the fetch below is already waiting.
        timer = threading.Timer(0.3, broker.publish, [msg(queue, 1)])
        started = time.monotonic()
        timer.start()
        try:
            got = await broker.fetch([queue], 1, 10.0)
        finally:
            timer.join()
        assert ids(got) == ["id-1"]
        assert time.monotonic() - started < 3.0, "fetch must wake on publish, not time out"

    @in_event_loop
    async def test_fetch_wakes_when_the_same_loop_publishes(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()

        async def publish_later() -> None:
            await asyncio.sleep(0.2)
            await broker.publish_async(msg(queue, 1))

        started = time.monotonic()
        got, _ = await asyncio.gather(broker.fetch([queue], 1, 10.0), publish_later())
        assert ids(got) == ["id-1"]
        assert time.monotonic() - started < 3.0, "fetch must wake on publish, not time out"

    @in_event_loop
    async def test_several_queues_are_all_served(self, make_broker: BrokerFactory) -> None:
        broker, first, second = make_broker(), new_queue(), new_queue()
        broker.publish_many([msg(first, n) for n in range(4)])
        broker.publish_many([msg(second, n) for n in range(4, 8)])
        # One message at a time, as a busy worker fetches: neither queue may starve.
        early = [(await collect(broker, [first, second], 1))[0] for _ in range(4)]
        assert {d.queue for d in early} == {first, second}
        rest = await collect(broker, [first, second], 4)
        for delivery in early + rest:
            assert delivery.queue == (first if int(delivery.message_id[3:]) < 4 else second)
        assert sorted(ids(early + rest)) == [f"id-{n}" for n in range(8)]

    @in_event_loop
    async def test_opaque_payload_is_carried_unchanged(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        payloads = [b"\x00garbage\xff\xfe", b"{not json", bytes(range(256)) * 64]
        broker.publish_many([OutboundMessage(queue, p, f"id-{n}") for n, p in enumerate(payloads)])
        got = await collect(broker, [queue], 3)
        assert [d.payload for d in got] == payloads

    def test_priority_out_of_range_is_refused(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        for priority in (-1, 10):
            with pytest.raises(ValueError, match="priority"):
                broker.publish(msg(queue, 1, priority=priority))
        assert broker.queue_length(queue) == 0
