"""``MemoryBroker`` leases, etas and the delivery limit driven by a fake clock: no waiting.

Every fetch here uses ``timeout=0``, so time moves only when a test advances the clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from celeriac.brokers.base import DeadLetterReason, Delivery, OutboundMessage
from celeriac.brokers.memory import MemoryBroker

LEASE = 30.0
T = TypeVar("T")


class FakeClock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker(clock: FakeClock) -> MemoryBroker:
    return MemoryBroker(lease_seconds=LEASE, delivery_limit=3, clock=clock)


def fetch(broker: MemoryBroker, queues: Sequence[str] = ("q",), limit: int = 10) -> list[Delivery]:
    return asyncio.run(broker.fetch(queues, limit, 0))


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def msg(n: int, queue: str = "q", priority: int = 0, delay: float | None = None) -> OutboundMessage:
    return OutboundMessage(queue, f"p{n}".encode(), f"id-{n}", priority=priority, delay=delay)


def ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [d.message_id for d in deliveries]


# -- leases ---------------------------------------------------------------------------------
def test_lease_is_held_until_its_deadline_then_handed_out_again(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1))
    [first] = fetch(broker)
    clock.advance(LEASE - 0.001)
    assert fetch(broker) == []
    clock.advance(0.001)  # exactly at the deadline the lease is lost
    [again] = fetch(broker)
    assert (again.message_id, again.delivery_count) == ("id-1", 2)
    assert again.token != first.token


def test_an_expired_lease_is_lost_even_before_anyone_refetches(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1))
    [delivery] = fetch(broker)
    clock.advance(LEASE)
    assert run(delivery.ack()) is False
    assert broker.queue_length("q") == 1  # taken back, ready for the next consumer


def test_extend_renews_from_now(broker: MemoryBroker, clock: FakeClock) -> None:
    broker.publish(msg(1))
    [held] = fetch(broker)
    for _ in range(5):
        clock.advance(LEASE - 1)
        assert run(broker.extend([held])) == []
        assert fetch(broker) == []
    assert run(held.ack()) is True


def test_extend_reports_only_the_lost_leases(broker: MemoryBroker, clock: FakeClock) -> None:
    broker.publish(msg(1))
    [early] = fetch(broker)
    clock.advance(LEASE / 2)
    broker.publish(msg(2))
    [late] = fetch(broker)
    clock.advance(LEASE / 2)  # early's lease is lost, late's has half a lease left
    assert run(broker.extend([early, late])) == [early]
    clock.advance(LEASE - 1)
    assert ids(fetch(broker)) == ["id-1"]  # only the message whose lease was lost


def test_requeue_restores_the_count_and_the_place_in_line(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish_many([msg(1), msg(2)])
    [first] = fetch(broker, limit=1)
    assert run(first.requeue()) is True
    got = fetch(broker)
    assert ids(got) == ["id-1", "id-2"]  # back at its original place, ahead of id-2
    assert [d.delivery_count for d in got] == [1, 1]


def test_expired_lease_returns_to_its_original_place(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1))
    fetch(broker)
    broker.publish(msg(2))
    clock.advance(LEASE)
    assert ids(fetch(broker)) == ["id-1", "id-2"]


# -- delivery limit -------------------------------------------------------------------------
def test_delivery_limit_dead_letters_on_the_last_expiry(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1))
    for expected_count in (1, 2, 3):
        [delivery] = fetch(broker)
        assert delivery.delivery_count == expected_count
        clock.advance(LEASE)
    assert fetch(broker) == []
    [letter] = broker.dead_letters("q")
    assert (letter.reason, letter.delivery_count) == (DeadLetterReason.DELIVERY_LIMIT, 3)
    assert letter.dead_lettered_at == clock.now
    assert "delivery_limit=3" in letter.detail


def test_requeue_does_not_count_toward_the_delivery_limit(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1))
    for _ in range(10):
        [delivery] = fetch(broker)
        assert delivery.delivery_count == 1
        assert run(delivery.requeue()) is True
    assert broker.dead_letters("q") == []


def test_replay_after_the_limit_gets_the_full_limit_again(
    broker: MemoryBroker, clock: FakeClock
) -> None:
    broker.publish(msg(1, priority=7))
    for _ in range(3):
        fetch(broker)
        clock.advance(LEASE)
    assert broker.replay_dead_letters("q") == 1
    [replayed] = fetch(broker)
    assert (replayed.delivery_count, replayed.priority) == (1, 7)


# -- eta ------------------------------------------------------------------------------------
def test_eta_becomes_ready_exactly_when_due(broker: MemoryBroker, clock: FakeClock) -> None:
    broker.publish(msg(1, delay=10))
    broker.publish(msg(2, delay=-10))  # already due: ready at once
    assert (broker.delayed_count("q"), broker.queue_length("q")) == (1, 1)
    assert ids(fetch(broker)) == ["id-2"]
    clock.advance(9.999)
    assert fetch(broker) == []
    clock.advance(0.001)
    assert (broker.delayed_count("q"), broker.queue_length("q")) == (0, 1)
    assert ids(fetch(broker)) == ["id-1"]


def test_due_etas_keep_priority_order(broker: MemoryBroker, clock: FakeClock) -> None:
    broker.publish_many([msg(1, delay=1), msg(2, priority=9, delay=2)])
    clock.advance(5)
    assert ids(fetch(broker)) == ["id-2", "id-1"]


# -- several queues -------------------------------------------------------------------------
def test_higher_priority_wins_across_queues(broker: MemoryBroker) -> None:
    broker.publish_many([msg(1, queue="a"), msg(2, queue="b", priority=5)])
    assert ids(fetch(broker, ["a", "b"], limit=1)) == ["id-2"]


def test_equal_priorities_rotate_between_queues(broker: MemoryBroker) -> None:
    broker.publish_many([msg(n, queue="a") for n in range(3)])
    broker.publish_many([msg(n, queue="b") for n in range(3, 6)])
    one_at_a_time = [fetch(broker, ["a", "b"], limit=1)[0].queue for _ in range(4)]
    assert one_at_a_time == ["a", "b", "a", "b"]
    assert [d.queue for d in fetch(broker, ["a", "b"])] in (["a", "b"], ["b", "a"])


def test_a_queue_named_twice_is_served_once(broker: MemoryBroker) -> None:
    broker.publish(msg(1))
    assert ids(fetch(broker, ["q", "q"])) == ["id-1"]


# -- edges ----------------------------------------------------------------------------------
def test_a_bad_priority_in_a_batch_publishes_nothing(broker: MemoryBroker) -> None:
    with pytest.raises(ValueError, match="from 0 to 9"):
        broker.publish_many([msg(1), msg(2, priority=42)])
    assert broker.queue_length("q") == 0


def test_limit_zero_and_no_queues_fetch_nothing(broker: MemoryBroker) -> None:
    broker.publish(msg(1))
    assert fetch(broker, limit=0) == []
    assert fetch(broker, []) == []
    assert broker.queue_length("q") == 1


def test_admin_calls_on_unknown_queues(broker: MemoryBroker) -> None:
    assert broker.queue_length("nope") == broker.delayed_count("nope") == 0
    assert broker.purge("nope") == broker.purge_dead_letters("nope") == 0
    assert broker.dead_letters("nope") == []
    assert broker.replay_dead_letters("nope") == 0


def test_constructor_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        MemoryBroker(lease_seconds=0)
    with pytest.raises(ValueError):
        MemoryBroker(delivery_limit=0)
