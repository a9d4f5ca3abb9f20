"""Settling a delivery: ack, requeue (counted or not), many settles at once.

Part of ``BrokerContract`` (``contracts.broker``); the public ``Broker`` API only.
"""

from __future__ import annotations

import asyncio

from celeriac.brokers.base import DeadLetterReason
from celeriac.testing.contracts.broker_support import (
    SHORT_LEASE,
    BrokerFactory,
    BrokerSuite,
    collect,
    in_event_loop,
    msg,
    new_queue,
)


class SettleContract(BrokerSuite):
    @in_event_loop
    async def test_ack_removes_the_message_for_good(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE), new_queue()
        broker.publish(msg(queue, 1))
        [delivery] = await collect(broker, [queue], 1)
        assert await delivery.ack() is True
        assert broker.queue_length(queue) == 0
        # Past the lease: an acked message never comes back.
        assert await broker.fetch([queue], 1, SHORT_LEASE * 2) == []
        assert await delivery.ack() is False, "a second ack must be refused"

    @in_event_loop
    async def test_requeue_gives_it_back_with_the_same_delivery_count(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish(msg(queue, 1))
        [first] = await collect(broker, [queue], 1)
        assert await first.requeue() is True
        assert broker.queue_length(queue) == 1
        [again] = await collect(broker, [queue], 1)
        assert (again.message_id, again.payload) == ("id-1", b"payload-1")
        assert again.delivery_count == first.delivery_count == 1
        assert await again.ack() is True

    @in_event_loop
    async def test_counted_requeue_raises_the_delivery_count(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish(msg(queue, 1))
        [first] = await collect(broker, [queue], 1)
        assert await first.requeue(count_delivery=True) is True
        [again] = await collect(broker, [queue], 1)
        assert (again.message_id, again.delivery_count) == ("id-1", 2)
        assert await again.ack() is True

    @in_event_loop
    async def test_many_settles_at_once_each_apply(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, n) for n in range(20)])
        got = await collect(broker, [queue], 20)
        acked = await asyncio.gather(*(broker.ack(d) for d in got[:10]))
        again = await asyncio.gather(*(broker.ack(d) for d in got[:10]))
        dead = await asyncio.gather(
            *(broker.dead_letter(d, DeadLetterReason.REJECTED, "x") for d in got[10:])
        )
        assert all(acked) and not any(again) and all(dead), "each settle applies once"
        assert broker.queue_length(queue) == 0
        assert len(broker.dead_letters(queue)) == 10

    @in_event_loop
    async def test_acks_sent_together_leave_the_unsettled_ones_held(
        self, make_broker: BrokerFactory
    ) -> None:
        """Acks that meet on their way may be sent as one (RabbitMQ's multiple ack): one
        never covers a delivery still held, nor one being taken back meanwhile."""
        lease = 1.0
        broker, queue = make_broker(lease_seconds=lease), new_queue()
        broker.publish_many([msg(queue, n) for n in range(12)])
        got = await collect(broker, [queue], 12)
        first, middle, requeued, rest = got[0], got[5], got[8], got[1:5] + got[6:8] + got[9:]
        acked, requeue = await asyncio.gather(
            asyncio.gather(*(broker.ack(d) for d in rest)), broker.requeue(requeued)
        )
        assert all(acked) and requeue
        [again] = await collect(broker, [queue], 1)  # the requeued one, at once
        assert again.message_id == requeued.message_id and await again.ack() is True
        # The two still held come back after their lease; no acked one ever does.
        back = await collect(broker, [queue], 2, lease * 4)
        assert all(await asyncio.gather(*(d.ack() for d in back)))
        assert sorted(d.message_id for d in back) == sorted([first.message_id, middle.message_id])
        assert await first.ack() is False and await middle.ack() is False, "taken back"
        assert await broker.fetch([queue], 1, lease) == []
