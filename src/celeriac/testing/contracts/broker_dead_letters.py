"""Dead letters: what they keep, listing, replay and purge.

Part of ``BrokerContract`` (``contracts.broker``); the public ``Broker`` API only.
"""

from __future__ import annotations

import time

from celeriac.brokers.base import DeadLetterReason
from celeriac.testing.contracts.broker_support import (
    BrokerFactory,
    BrokerSuite,
    collect,
    in_event_loop,
    msg,
    new_queue,
)


class DeadLetterContract(BrokerSuite):
    @in_event_loop
    async def test_dead_letter_stores_payload_reason_and_detail(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish(msg(queue, 1))
        [delivery] = await collect(broker, [queue], 1)
        before = time.time()
        assert await delivery.dead_letter(DeadLetterReason.REJECTED, "boom") is True
        [letter] = broker.dead_letters(queue)
        assert (letter.queue, letter.message_id, letter.payload) == (queue, "id-1", b"payload-1")
        assert (letter.reason, letter.detail) == (DeadLetterReason.REJECTED, "boom")
        assert letter.delivery_count == 1
        assert abs(letter.dead_lettered_at - before) < 60
        assert broker.queue_length(queue) == 0
        assert await broker.fetch([queue], 1, 0.2) == []

    @in_event_loop
    async def test_dead_letters_are_listed_oldest_first(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, n) for n in range(3)])
        for delivery in await collect(broker, [queue], 3):
            await delivery.dead_letter(DeadLetterReason.MALFORMED, delivery.message_id)
        letters = broker.dead_letters(queue, limit=2)
        assert [letter.message_id for letter in letters] == ["id-0", "id-1"]
        assert len({letter.entry_id for letter in broker.dead_letters(queue)}) == 3

    @in_event_loop
    async def test_replay_named_dead_letter(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, 1), msg(queue, 2)])
        for delivery in await collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.UNKNOWN_TASK)
        one, two = broker.dead_letters(queue)
        assert broker.replay_dead_letters(queue, [two.entry_id, "no-such-entry"]) == 1
        [replayed] = await collect(broker, [queue], 1)
        assert (replayed.message_id, replayed.payload) == ("id-2", b"payload-2")
        assert replayed.delivery_count == 1
        assert [letter.entry_id for letter in broker.dead_letters(queue)] == [one.entry_id]

    @in_event_loop
    async def test_replay_all_then_purge_dead_letters(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), new_queue()
        broker.publish_many([msg(queue, 1), msg(queue, 2)])
        for delivery in await collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.OVERSIZED)
        assert broker.replay_dead_letters(queue) == 2
        assert broker.dead_letters(queue) == []
        assert broker.queue_length(queue) == 2
        for delivery in await collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.OVERSIZED)
        assert broker.purge_dead_letters(queue) == 2
        assert broker.dead_letters(queue) == []
        assert await broker.fetch([queue], 1, 0.2) == []
