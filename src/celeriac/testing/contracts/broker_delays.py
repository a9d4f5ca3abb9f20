"""Delayed messages: held until due on the broker's clock, counted apart, purged.

Part of ``BrokerContract`` (``contracts.broker``); the public ``Broker`` API only.
"""

from __future__ import annotations

import time

from celeriac.testing.contracts.broker_support import (
    EARLY,
    SLACK,
    BrokerFactory,
    BrokerSuite,
    ids,
    in_event_loop,
    msg,
    new_queue,
)


class DelayContract(BrokerSuite):
    @in_event_loop
    async def test_eta_is_held_until_due_then_fetched_once(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        eta = time.time() + 0.5
        broker.publish(msg(queue, 1, delay=0.5))
        assert broker.queue_length(queue) == 0
        got = await broker.fetch([queue], 1, 0.5 + SLACK)
        assert ids(got) == ["id-1"]
        assert time.time() >= eta - EARLY, "an eta message was handed out before due"
        assert await got[0].ack() is True
        assert await broker.fetch([queue], 1, 0.3) == []
        assert broker.delayed_count(queue) == 0

    @in_event_loop
    async def test_a_caller_holding_messages_gets_one_as_it_becomes_due(
        self, make_broker: BrokerFactory
    ) -> None:
        # A caller that holds what it fetched asks for more (past what a worker's slots
        # would ask): the message that becomes due meanwhile comes when it is, not when
        # the fetch's wait ends.
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, 1), msg(queue, 2, delay=0.3)])
        [held] = await broker.fetch([queue], 1, SLACK)
        asked = time.monotonic()
        got = await broker.fetch([queue], 1, 4 * SLACK)
        waited = time.monotonic() - asked
        assert ids(got) == ["id-2"]
        assert waited < 2 * SLACK, f"handed out {waited:.1f} s after the fetch, at its end"
        for delivery in (held, *got):
            assert await delivery.ack() is True

    def test_delayed_and_ready_are_counted_apart(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        later = 60.0
        broker.publish_many([msg(queue, 1, delay=later), msg(queue, 2, delay=later), msg(queue, 3)])
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (2, 1)

    @in_event_loop
    async def test_publish_many_async_stores_delayed_messages_too(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        await broker.publish_many_async([msg(queue, 1, delay=60.0), msg(queue, 2)])
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (1, 1)

    @in_event_loop
    async def test_purge_drops_ready_and_delayed(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, 1), msg(queue, 2), msg(queue, 3, delay=0.3)])
        assert broker.purge(queue) == 3
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (0, 0)
        assert await broker.fetch([queue], 10, 0.3 + 0.5) == []  # past the dropped eta

    @in_event_loop
    async def test_two_queues_delays_each_end_in_their_own_queue_and_purge_apart(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, first, second = make_broker(), new_queue(), new_queue()
        eta = time.time() + 0.4
        broker.publish_many([msg(first, 1, delay=0.4), msg(second, 2, delay=0.4),
                             msg(first, 3, delay=60.0), msg(second, 4, delay=60.0)])  # fmt: skip
        # Each due message lands in its own queue, not before its time
        got_second = await broker.fetch([second], 5, 0.4 + SLACK)
        got_first = await broker.fetch([first], 5, SLACK)
        assert (ids(got_first), ids(got_second)) == (["id-1"], ["id-2"])
        assert time.time() >= eta - EARLY, "an eta message was handed out before due"
        for delivery in (*got_first, *got_second):
            assert await delivery.ack() is True
        # A purge drops its own queue's delayed message only
        assert broker.purge(first) == 1
        waiting = (0, 1) if broker.delays_counted_per_queue else (1, 1)  # or every queue's
        assert (broker.delayed_count(first), broker.delayed_count(second)) == waiting
        assert broker.purge(second) == 1
        assert (broker.delayed_count(first), broker.delayed_count(second)) == (0, 0)
