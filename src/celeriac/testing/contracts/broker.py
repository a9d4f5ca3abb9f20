"""The broker contract: the behaviour users rely on, as tests every ``Broker`` engine passes.

Uses only the public ``Broker`` API, never an engine's internals, so it runs unchanged
against memory, Redis and RabbitMQ. Imports ``celeriac.brokers.base``, pytest and the
stdlib; never an engine. Timing is real time (engines use server time): tests await a
``fetch`` with a timeout rather than sleep.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
import uuid
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Protocol

import pytest

from celeriac.brokers.base import (
    Broker,
    DeadLetterReason,
    Delivery,
    OutboundMessage,
    Revocation,
)
from celeriac.exceptions import ImproperlyConfigured

SHORT_LEASE = 0.5  # seconds; long enough for a few round trips to a local server
SLACK = 2.0  # how late an engine may notice a due eta or an expired lease
EARLY = 0.05  # tolerance for "not before": clock granularity, server vs local clock


class BrokerFactory(Protocol):
    """Builds a broker for one test; the fixture providing it cleans up afterwards."""

    def __call__(self, lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker: ...


AsyncTest = Callable[[Any, BrokerFactory], Coroutine[Any, Any, None]]


def _in_event_loop(test: AsyncTest) -> Callable[[Any, BrokerFactory], None]:
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


def _queue() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def _key(what: str) -> str:
    return f"contract-{what}-{uuid.uuid4().hex[:12]}"


def _msg(queue: str, n: int, priority: int = 0, delay: float | None = None) -> OutboundMessage:
    return OutboundMessage(
        queue, f"payload-{n}".encode(), f"id-{n}", priority=priority, delay=delay
    )


def _ids(deliveries: Sequence[Delivery]) -> list[str]:
    return [delivery.message_id for delivery in deliveries]


async def _collect(
    broker: Broker, queues: Sequence[str], count: int, timeout: float = SLACK
) -> list[Delivery]:
    """Fetch until ``count`` deliveries arrived; an engine may hand out fewer per call."""
    got: list[Delivery] = []
    give_up = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < give_up:
        got += await broker.fetch(queues, count - len(got), give_up - time.monotonic())
    assert len(got) == count, f"expected {count} deliveries, got {len(got)}"
    return got


async def _expect_order(broker: Broker, queue: str, expected: list[str]) -> None:
    got = await _collect(broker, [queue], len(expected))
    assert _ids(got) == expected
    for delivery in got:
        assert await delivery.ack() is True


def _refuses_key_value(broker: Broker) -> bool:
    """An engine without shared key-value state (``supports_key_value = False``) must refuse
    idempotency keys loudly, never pretend: True when it does, so the test ends there."""
    if broker.supports_key_value:
        return False
    with pytest.raises(ImproperlyConfigured):
        broker.reserve(_key("idem"), "task-1", 60.0)
    with pytest.raises(ImproperlyConfigured):
        broker.release(_key("idem"), "task-1")
    return True


async def _refuses_buckets(broker: Broker) -> bool:
    """The same for cluster token buckets."""
    if broker.supports_key_value:
        return False
    with pytest.raises(ImproperlyConfigured, match="rate_limit_scope"):
        await broker.acquire(_key("bucket"), 10.0, 10.0)
    return True


class BrokerContract:
    """Subclass as ``TestXBroker(BrokerContract)`` with a ``make_broker`` fixture that
    returns a ``BrokerFactory``, closes what it built and isolates state (every test here
    also uses fresh, unique queue names)."""

    def another_worker(self, broker: Broker, make_broker: BrokerFactory) -> Broker:
        """A second worker's handle on the same queues as ``broker``: its own connection, or
        the same instance for an engine whose state lives in one process."""
        return make_broker() if broker.shares_across_processes else broker

    # -- publish and fetch ------------------------------------------------------------------
    @_in_event_loop
    async def test_round_trip_keeps_payload_and_message_id(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish(OutboundMessage(queue, b"hello \xe2\x98\x83", "msg-1", priority=3))
        [delivery] = await _collect(broker, [queue], 1)
        assert delivery.payload == b"hello \xe2\x98\x83"
        assert (delivery.message_id, delivery.queue) == ("msg-1", queue)
        assert (delivery.priority, delivery.delivery_count) == (3, 1)
        assert await delivery.ack() is True

    @_in_event_loop
    async def test_fifo_within_a_queue(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        for n in range(10):
            broker.publish(_msg(queue, n))
        await _expect_order(broker, queue, [f"id-{n}" for n in range(10)])

    @_in_event_loop
    async def test_higher_priority_first_and_fifo_within_a_priority(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        priorities = [0, 5, 9, 5, 0, 9]
        for n, priority in enumerate(priorities):
            broker.publish(_msg(queue, n, priority=priority))
        if not broker.supports_priorities:  # FIFO, each message still carrying its priority
            got = await _collect(broker, [queue], 6)
            assert _ids(got) == [f"id-{n}" for n in range(6)]
            assert [d.priority for d in got] == priorities
            return
        await _expect_order(broker, queue, ["id-2", "id-5", "id-1", "id-3", "id-0", "id-4"])

    @_in_event_loop
    async def test_publish_many_keeps_order(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, n) for n in range(5)])
        await broker.publish_many_async([_msg(queue, n) for n in range(5, 10)])
        await _expect_order(broker, queue, [f"id-{n}" for n in range(10)])

    @_in_event_loop
    async def test_fetch_returns_at_most_limit(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, n) for n in range(5)])
        first = await broker.fetch([queue], 2, SLACK)
        assert 1 <= len(first) <= 2
        rest = await _collect(broker, [queue], 5 - len(first))
        assert sorted(_ids(first + rest)) == [f"id-{n}" for n in range(5)]

    @_in_event_loop
    async def test_a_fetcher_holds_no_more_than_it_asked_for(
        self, make_broker: BrokerFactory
    ) -> None:
        # Fair dispatch: what a worker fetched (or read ahead) never keeps the rest from another.
        holder, queue = make_broker(), _queue()
        other = self.another_worker(holder, make_broker)
        holder.publish_many([_msg(queue, n) for n in range(10)])
        held = await _collect(holder, [queue], 3)
        rest = await _collect(other, [queue], 7)
        assert sorted(_ids(held + rest)) == sorted(f"id-{n}" for n in range(10))

    @_in_event_loop
    async def test_stop_fetching_gives_back_what_was_read_ahead_uncounted(
        self, make_broker: BrokerFactory
    ) -> None:
        leaving, queue = make_broker(), _queue()
        staying = self.another_worker(leaving, make_broker)
        held = await leaving.fetch([queue], 4, 0.2)  # an engine may start reading ahead
        assert held == []
        leaving.publish_many([_msg(queue, n) for n in range(4)])
        held = await _collect(leaving, [queue], 1)
        await leaving.stop_fetching()  # a warm shutdown: its one task still runs
        rest = await _collect(staying, [queue], 3)
        assert sorted(_ids(held + rest)) == [f"id-{n}" for n in range(4)]
        assert [d.delivery_count for d in rest] == [1, 1, 1], "never handed out: not counted"
        assert await held[0].ack() is True

    @_in_event_loop
    async def test_fetch_with_nothing_ready_returns_empty(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        assert await broker.fetch([queue], 10, 0) == []
        started = time.monotonic()
        assert await broker.fetch([queue], 10, 0.3) == []
        assert time.monotonic() - started >= 0.15, "an empty fetch must wait, not spin"

    @_in_event_loop
    async def test_fetch_wakes_when_another_thread_publishes(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        # The timer fires while the fetch below is already waiting.
        timer = threading.Timer(0.3, broker.publish, [_msg(queue, 1)])
        started = time.monotonic()
        timer.start()
        try:
            got = await broker.fetch([queue], 1, 10.0)
        finally:
            timer.join()
        assert _ids(got) == ["id-1"]
        assert time.monotonic() - started < 3.0, "fetch must wake on publish, not time out"

    @_in_event_loop
    async def test_fetch_wakes_when_the_same_loop_publishes(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()

        async def publish_later() -> None:
            await asyncio.sleep(0.2)
            await broker.publish_async(_msg(queue, 1))

        started = time.monotonic()
        got, _ = await asyncio.gather(broker.fetch([queue], 1, 10.0), publish_later())
        assert _ids(got) == ["id-1"]
        assert time.monotonic() - started < 3.0, "fetch must wake on publish, not time out"

    @_in_event_loop
    async def test_several_queues_are_all_served(self, make_broker: BrokerFactory) -> None:
        broker, first, second = make_broker(), _queue(), _queue()
        broker.publish_many([_msg(first, n) for n in range(4)])
        broker.publish_many([_msg(second, n) for n in range(4, 8)])
        # One message at a time, as a busy worker fetches: neither queue may starve.
        early = [(await _collect(broker, [first, second], 1))[0] for _ in range(4)]
        assert {d.queue for d in early} == {first, second}
        rest = await _collect(broker, [first, second], 4)
        for delivery in early + rest:
            assert delivery.queue == (first if int(delivery.message_id[3:]) < 4 else second)
        assert sorted(_ids(early + rest)) == [f"id-{n}" for n in range(8)]

    @_in_event_loop
    async def test_opaque_payload_is_carried_unchanged(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        payloads = [b"\x00garbage\xff\xfe", b"{not json", bytes(range(256)) * 64]
        broker.publish_many([OutboundMessage(queue, p, f"id-{n}") for n, p in enumerate(payloads)])
        got = await _collect(broker, [queue], 3)
        assert [d.payload for d in got] == payloads

    def test_priority_out_of_range_is_refused(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        for priority in (-1, 10):
            with pytest.raises(ValueError, match="priority"):
                broker.publish(_msg(queue, 1, priority=priority))
        assert broker.queue_length(queue) == 0

    # -- outcomes ---------------------------------------------------------------------------
    @_in_event_loop
    async def test_ack_removes_the_message_for_good(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE), _queue()
        broker.publish(_msg(queue, 1))
        [delivery] = await _collect(broker, [queue], 1)
        assert await delivery.ack() is True
        assert broker.queue_length(queue) == 0
        # Past the lease: an acked message never comes back.
        assert await broker.fetch([queue], 1, SHORT_LEASE * 2) == []
        assert await delivery.ack() is False, "a second ack must be refused"

    @_in_event_loop
    async def test_requeue_gives_it_back_with_the_same_delivery_count(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish(_msg(queue, 1))
        [first] = await _collect(broker, [queue], 1)
        assert await first.requeue() is True
        assert broker.queue_length(queue) == 1
        [again] = await _collect(broker, [queue], 1)
        assert (again.message_id, again.payload) == ("id-1", b"payload-1")
        assert again.delivery_count == first.delivery_count == 1
        assert await again.ack() is True

    @_in_event_loop
    async def test_counted_requeue_raises_the_delivery_count(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish(_msg(queue, 1))
        [first] = await _collect(broker, [queue], 1)
        assert await first.requeue(count_delivery=True) is True
        [again] = await _collect(broker, [queue], 1)
        assert (again.message_id, again.delivery_count) == ("id-1", 2)
        assert await again.ack() is True

    @_in_event_loop
    async def test_dead_letter_stores_payload_reason_and_detail(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish(_msg(queue, 1))
        [delivery] = await _collect(broker, [queue], 1)
        before = time.time()
        assert await delivery.dead_letter(DeadLetterReason.REJECTED, "boom") is True
        [letter] = broker.dead_letters(queue)
        assert (letter.queue, letter.message_id, letter.payload) == (queue, "id-1", b"payload-1")
        assert (letter.reason, letter.detail) == (DeadLetterReason.REJECTED, "boom")
        assert letter.delivery_count == 1
        assert abs(letter.dead_lettered_at - before) < 60
        assert broker.queue_length(queue) == 0
        assert await broker.fetch([queue], 1, 0.2) == []

    @_in_event_loop
    async def test_dead_letters_are_listed_oldest_first(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, n) for n in range(3)])
        for delivery in await _collect(broker, [queue], 3):
            await delivery.dead_letter(DeadLetterReason.MALFORMED, delivery.message_id)
        letters = broker.dead_letters(queue, limit=2)
        assert [letter.message_id for letter in letters] == ["id-0", "id-1"]
        assert len({letter.entry_id for letter in broker.dead_letters(queue)}) == 3

    @_in_event_loop
    async def test_replay_named_dead_letter(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, 1), _msg(queue, 2)])
        for delivery in await _collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.UNKNOWN_TASK)
        one, two = broker.dead_letters(queue)
        assert broker.replay_dead_letters(queue, [two.entry_id, "no-such-entry"]) == 1
        [replayed] = await _collect(broker, [queue], 1)
        assert (replayed.message_id, replayed.payload) == ("id-2", b"payload-2")
        assert replayed.delivery_count == 1
        assert [letter.entry_id for letter in broker.dead_letters(queue)] == [one.entry_id]

    @_in_event_loop
    async def test_replay_all_then_purge_dead_letters(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, 1), _msg(queue, 2)])
        for delivery in await _collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.OVERSIZED)
        assert broker.replay_dead_letters(queue) == 2
        assert broker.dead_letters(queue) == []
        assert broker.queue_length(queue) == 2
        for delivery in await _collect(broker, [queue], 2):
            await delivery.dead_letter(DeadLetterReason.OVERSIZED)
        assert broker.purge_dead_letters(queue) == 2
        assert broker.dead_letters(queue) == []
        assert await broker.fetch([queue], 1, 0.2) == []

    # -- delays -----------------------------------------------------------------------------
    @_in_event_loop
    async def test_eta_is_held_until_due_then_fetched_once(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        eta = time.time() + 0.5
        broker.publish(_msg(queue, 1, delay=0.5))
        assert broker.queue_length(queue) == 0
        got = await broker.fetch([queue], 1, 0.5 + SLACK)
        assert _ids(got) == ["id-1"]
        assert time.time() >= eta - EARLY, "an eta message was handed out before due"
        assert await got[0].ack() is True
        assert await broker.fetch([queue], 1, 0.3) == []
        assert broker.delayed_count(queue) == 0

    def test_delayed_and_ready_are_counted_apart(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        later = 60.0
        broker.publish_many(
            [_msg(queue, 1, delay=later), _msg(queue, 2, delay=later), _msg(queue, 3)]
        )
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (2, 1)

    @_in_event_loop
    async def test_publish_many_async_stores_delayed_messages_too(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(), _queue()
        await broker.publish_many_async([_msg(queue, 1, delay=60.0), _msg(queue, 2)])
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (1, 1)

    @_in_event_loop
    async def test_many_settles_at_once_each_apply(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, n) for n in range(20)])
        got = await _collect(broker, [queue], 20)
        acked = await asyncio.gather(*(broker.ack(d) for d in got[:10]))
        again = await asyncio.gather(*(broker.ack(d) for d in got[:10]))
        dead = await asyncio.gather(
            *(broker.dead_letter(d, DeadLetterReason.REJECTED, "x") for d in got[10:])
        )
        assert all(acked) and not any(again) and all(dead), "each settle applies once"
        assert broker.queue_length(queue) == 0
        assert len(broker.dead_letters(queue)) == 10

    @_in_event_loop
    async def test_purge_drops_ready_and_delayed(self, make_broker: BrokerFactory) -> None:
        broker, queue = make_broker(), _queue()
        broker.publish_many([_msg(queue, 1), _msg(queue, 2), _msg(queue, 3, delay=0.3)])
        assert broker.purge(queue) == 3
        assert (broker.delayed_count(queue), broker.queue_length(queue)) == (0, 0)
        assert await broker.fetch([queue], 10, 0.3 + 0.5) == []  # past the dropped eta

    # -- leases -----------------------------------------------------------------------------
    @_in_event_loop
    async def test_abandoned_message_comes_back_after_the_lease(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE), _queue()
        broker.publish(_msg(queue, 1))
        started = time.monotonic()
        [first] = await _collect(broker, [queue], 1)  # then: no ack, no extend
        got = await broker.fetch([queue], 1, SHORT_LEASE + SLACK)
        assert _ids(got) == ["id-1"], "an abandoned message must come back"
        elapsed = time.monotonic() - started
        assert elapsed >= SHORT_LEASE - EARLY, f"handed out again after {elapsed:.3f}s"
        assert (first.delivery_count, got[0].delivery_count) == (1, 2)
        assert await got[0].ack() is True

    @_in_event_loop
    async def test_extending_holder_is_never_redelivered(self, make_broker: BrokerFactory) -> None:
        lease = 0.6
        broker, queue = make_broker(lease_seconds=lease), _queue()
        broker.publish(_msg(queue, 1))
        [held] = await _collect(broker, [queue], 1)
        for _ in range(9):  # three leases long, renewing every third of a lease
            assert await broker.fetch([queue], 1, lease / 3) == [], "redelivered while held"
            assert await broker.extend([held]) == []
        assert await held.ack() is True

    @_in_event_loop
    async def test_delivery_limit_dead_letters_the_message(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=SHORT_LEASE, delivery_limit=2), _queue()
        broker.publish(_msg(queue, 1))
        await _collect(broker, [queue], 1)  # abandoned once
        [second] = await _collect(broker, [queue], 1, SHORT_LEASE + SLACK)
        assert second.delivery_count == 2  # abandoned again: that reaches the limit
        give_up = time.monotonic() + SHORT_LEASE + SLACK
        while not broker.dead_letters(queue):
            assert time.monotonic() < give_up, "never dead-lettered at the delivery limit"
            assert await broker.fetch([queue], 1, 0.25) == [], "handed out past the limit"
        [letter] = broker.dead_letters(queue)
        assert (letter.reason, letter.delivery_count) == (DeadLetterReason.DELIVERY_LIMIT, 2)
        assert (letter.message_id, letter.payload) == ("id-1", b"payload-1")
        assert broker.queue_length(queue) == 0
        # Replayed, it starts over: a fresh count, and the full limit ahead of it.
        assert broker.replay_dead_letters(queue) == 1
        [replayed] = await _collect(broker, [queue], 1)
        assert replayed.delivery_count == 1
        assert await replayed.ack() is True

    @_in_event_loop
    async def test_stale_delivery_is_fenced_after_takeover(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, queue = make_broker(lease_seconds=0.75), _queue()
        broker.publish(_msg(queue, 1))
        [old] = await _collect(broker, [queue], 1)
        [new] = await _collect(broker, [queue], 1, 0.75 + SLACK)  # taken over
        assert new.token != old.token
        assert await old.ack() is False
        assert await old.requeue() is False
        assert await old.dead_letter(DeadLetterReason.REJECTED) is False
        assert await broker.extend([old]) == [old]
        # The refused calls changed nothing: the new holder still owns the message.
        assert (broker.queue_length(queue), broker.dead_letters(queue)) == (0, [])
        assert await new.ack() is True
        assert await broker.fetch([queue], 1, 0.2) == []

    # -- revocations ------------------------------------------------------------------------
    def test_revoked_ids_are_kept_until_their_ttl(self, make_broker: BrokerFactory) -> None:
        broker, short, long = make_broker(), _key("short"), _key("long")
        before = time.time()
        broker.revoke([short], 0.3)
        broker.revoke([long, long], 60.0, terminate=True, signal="SIGKILL")
        live = broker.revoked_ids()
        assert set(live) == {short, long}
        assert before + 60.0 - SLACK <= live[long] <= time.time() + 60.0 + SLACK
        assert live[short] < live[long]
        time.sleep(0.3 + 0.2)
        assert set(broker.revoked_ids()) == {long}, "an ended revocation is not live"
        broker.revoke([], 60.0)  # nothing to do: neither stored nor refused
        with pytest.raises(ValueError, match="ttl"):
            broker.revoke([short], 0)

    def test_a_revocation_ends_at_the_later_of_two(self, make_broker: BrokerFactory) -> None:
        broker, task_id = make_broker(), _key("task")
        broker.revoke([task_id], 60.0)
        broker.revoke([task_id], 0.2)  # a shorter second revoke does not cut the first
        time.sleep(0.4)
        assert task_id in broker.revoked_ids()

    @_in_event_loop
    async def test_watchers_hear_each_revoke_until_stopped(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, first, second = make_broker(), _key("a"), _key("b")
        heard: asyncio.Queue[Revocation] = asyncio.Queue()
        watch = await broker.watch_revocations(heard.put_nowait)
        try:
            started = time.time()
            # From another thread, as a web process revokes while the worker's loop runs.
            await asyncio.to_thread(broker.revoke, [first, second], 30.0, terminate=True)
            got = await asyncio.wait_for(heard.get(), SLACK)
            assert got.task_ids == (first, second)
            assert (got.terminate, got.signal) == (True, "SIGTERM")
            assert started + 30.0 - SLACK <= got.expires[first] <= time.time() + 30.0 + SLACK
            broker.revoke([first], 30.0, signal="SIGKILL")  # from the loop's own thread
            got = await asyncio.wait_for(heard.get(), SLACK)
            assert (got.task_ids, got.terminate, got.signal) == ((first,), False, "SIGKILL")
        finally:
            await watch.stop()
        broker.revoke([second], 30.0)
        await asyncio.sleep(0.2)
        assert heard.empty(), "a stopped watch must not call back"

    # -- idempotency keys -------------------------------------------------------------------
    def test_reserve_keeps_the_first_value_until_its_ttl(self, make_broker: BrokerFactory) -> None:
        broker, key = make_broker(), _key("idem")
        if _refuses_key_value(broker):
            return
        assert broker.reserve(key, "task-1", 0.3) is None
        assert broker.reserve(key, "task-2", 0.3) == "task-1"
        assert broker.reserve(_key("other"), "task-3", 0.3) is None, "keys are independent"
        time.sleep(0.3 + 0.2)
        assert broker.reserve(key, "task-4", 60.0) is None, "an expired key is free again"
        assert broker.reserve(key, "task-5", 60.0) == "task-4"
        with pytest.raises(ValueError, match="ttl"):
            broker.reserve(key, "task-6", -1)

    def test_release_frees_only_its_own_reservation(self, make_broker: BrokerFactory) -> None:
        broker, key = make_broker(), _key("idem")
        if _refuses_key_value(broker):
            return
        assert broker.reserve(key, "task-1", 60.0) is None
        assert broker.release(key, "task-2") is False, "not the holder: nothing changes"
        assert broker.reserve(key, "task-3", 60.0) == "task-1"
        assert broker.release(key, "task-1") is True
        assert broker.release(key, "task-1") is False
        assert broker.reserve(key, "task-4", 60.0) is None

    # -- shared token buckets ---------------------------------------------------------------
    @_in_event_loop
    async def test_token_bucket_gives_capacity_then_paces_at_rate(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, key = make_broker(), _key("bucket")
        if await _refuses_buckets(broker):
            return
        waits = [await broker.acquire(key, 10.0, 10.0) for _ in range(10)]
        assert waits == [0.0] * 10, "a new bucket starts full"
        wait = await broker.acquire(key, 10.0, 10.0)
        assert 0.0 < wait <= 0.1 + EARLY, f"empty at 10/s: the next token is <= 0.1s away ({wait})"
        assert await broker.acquire(_key("other"), 10.0, 10.0) == 0.0, "buckets are independent"
        await asyncio.sleep(wait + 0.01)
        # The refused call took nothing, so one refill is enough for one token; no more.
        assert await broker.acquire(key, 10.0, 10.0) == 0.0, "refilled at the rate"
        assert await broker.acquire(key, 10.0, 10.0) > 0.0, "refilled faster than the rate"
        with pytest.raises(ValueError, match="rate"):
            await broker.acquire(key, 0.0, 10.0)
        with pytest.raises(ValueError, match="capacity"):
            await broker.acquire(key, 10.0, 0.5)

    @_in_event_loop
    async def test_token_bucket_is_shared_by_concurrent_callers(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, key = make_broker(), _key("bucket")
        if await _refuses_buckets(broker):
            return
        waits = await asyncio.gather(*(broker.acquire(key, 1.0, 5.0) for _ in range(20)))
        assert sorted(waits)[:5] == [0.0] * 5
        assert all(w > 0.5 for w in sorted(waits)[5:]), "exactly capacity tokens were given"
