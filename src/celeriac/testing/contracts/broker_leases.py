"""Leases: an abandoned message comes back, a renewing holder keeps it, the delivery
limit dead-letters it (and the engine hands that dead letter back), and a stale holder
is fenced off.

Part of ``BrokerContract`` (``contracts.broker``); the public ``Broker`` API only.
"""

from __future__ import annotations

import time

from celeriac.brokers.base import DeadLetterReason, Delivery
from celeriac.testing.contracts.broker_support import (
    EARLY,
    SHORT_LEASE,
    SLACK,
    BrokerFactory,
    BrokerSuite,
    collect,
    ids,
    in_event_loop,
    msg,
    new_queue,
)


class LeaseContract(BrokerSuite):
    @in_event_loop
    async def test_abandoned_message_comes_back_after_the_lease(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE), new_queue()
        broker.publish(msg(queue, 1))
        started = time.monotonic()
        [first] = await collect(broker, [queue], 1)  # then: no ack, no extend
        got = await broker.fetch([queue], 1, SHORT_LEASE + SLACK)
        assert ids(got) == ["id-1"], "an abandoned message must come back"
        elapsed = time.monotonic() - started
        assert elapsed >= SHORT_LEASE - EARLY, f"handed out again after {elapsed:.3f}s"
        assert (first.delivery_count, got[0].delivery_count) == (1, 2)
        assert await got[0].ack() is True

    @in_event_loop
    async def test_extending_holder_is_never_redelivered(self, make_broker: BrokerFactory) -> None:
        # Long enough that a loaded machine's scheduling delays (tenths of a second) do
        # not outlast the two thirds of a lease left between renewals.
        lease = 1.2
        broker, queue = make_broker(lease_seconds=lease), new_queue()
        broker.publish(msg(queue, 1))
        [held] = await collect(broker, [queue], 1)
        for _ in range(6):  # two leases long, renewing every third of a lease
            assert await broker.fetch([queue], 1, lease / 3) == [], "redelivered while held"
            assert await broker.extend([held]) == []
        assert await held.ack() is True

    @in_event_loop
    async def test_each_held_message_has_a_lease_of_its_own(
        self, make_broker: BrokerFactory
    ) -> None:
        lease = 1.2  # renewed every third of it, as in the test above
        broker, queue = make_broker(lease_seconds=lease), new_queue()
        broker.publish(msg(queue, 1))
        broker.publish(msg(queue, 2))
        abandoned, renewed = await collect(broker, [queue], 2)
        # One is left alone, the other renewed: only the first comes back.
        give_up = time.monotonic() + lease + SLACK
        back: list[Delivery] = []
        while not back:
            assert time.monotonic() < give_up, "an abandoned message never came back"
            back = await broker.fetch([queue], 1, lease / 3)
            assert await broker.extend([renewed]) == [], "a renewed lease was lost"
        assert ids(back) == ids([abandoned]), "a renewed message was taken back"
        assert back[0].delivery_count == 2
        assert await back[0].ack() is True
        # Left alone now, the renewed one comes back too, once its own lease has run out.
        [later] = await collect(broker, [queue], 1, lease + SLACK)
        assert ids([later]) == ids([renewed]) and later.delivery_count == 2
        assert await renewed.ack() is False, "a lapsed holder must be fenced off"
        assert await later.ack() is True

    @in_event_loop
    async def test_delivery_limit_dead_letters_the_message(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE, delivery_limit=2), new_queue()
        broker.publish(msg(queue, 1))
        await collect(broker, [queue], 1)  # abandoned once
        [second] = await collect(broker, [queue], 1, SHORT_LEASE + SLACK)
        assert second.delivery_count == 2  # abandoned again: that reaches the limit
        give_up = time.monotonic() + SHORT_LEASE + SLACK
        while not broker.dead_letters(queue):
            assert time.monotonic() < give_up, "never dead-lettered at the delivery limit"
            assert await broker.fetch([queue], 1, 0.25) == [], "handed out past the limit"
        [letter] = broker.dead_letters(queue)
        assert (letter.reason, letter.delivery_count) == (DeadLetterReason.DELIVERY_LIMIT, 2)
        assert (letter.message_id, letter.payload) == ("id-1", b"payload-1")
        assert broker.queue_length(queue) == 0
        # No caller settled it, so the engine hands it back to this process, once.
        [handed] = broker.take_dead_lettered()
        assert handed == letter, "the dead letter handed back must be the one listed"
        assert broker.take_dead_lettered() == [], "a dead letter is handed back once"
        # Replayed, it starts over: a fresh count, and the full limit ahead of it.
        assert broker.replay_dead_letters(queue) == 1
        [replayed] = await collect(broker, [queue], 1)
        assert replayed.delivery_count == 1
        assert await replayed.ack() is True

    @in_event_loop
    async def test_a_dead_letter_the_caller_made_is_not_handed_back(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish(msg(queue, 1))
        [held] = await collect(broker, [queue], 1)
        assert await held.dead_letter(DeadLetterReason.REJECTED, "by hand") is True
        assert [d.reason for d in broker.dead_letters(queue)] == [DeadLetterReason.REJECTED]
        assert broker.take_dead_lettered() == [], "the caller knows what it dead-lettered"

    @in_event_loop
    async def test_stale_delivery_is_fenced_after_takeover(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=0.75), new_queue()
        broker.publish(msg(queue, 1))
        [old] = await collect(broker, [queue], 1)
        [new] = await collect(broker, [queue], 1, 0.75 + SLACK)  # taken over
        assert new.token != old.token
        assert await old.ack() is False
        assert await old.requeue() is False
        assert await old.dead_letter(DeadLetterReason.REJECTED) is False
        assert await broker.extend([old]) == [old]
        # The refused calls changed nothing: the new holder still owns the message.
        assert (broker.queue_length(queue), broker.dead_letters(queue)) == (0, [])
        assert await new.ack() is True
        assert await broker.fetch([queue], 1, 0.2) == []
