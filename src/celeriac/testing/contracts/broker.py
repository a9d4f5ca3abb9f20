"""The broker contract: the behaviour users rely on, as tests every ``Broker`` engine passes.

``BrokerContract`` composes one mixin per topic (publishing and fetching, settling, dead
letters, delays, leases) with the shared state kept here (revocations, idempotency keys,
token buckets). Each uses only the public ``Broker`` API, never an engine's internals, so
the suite runs unchanged against memory, Redis and RabbitMQ. Imports the seams, pytest
and the stdlib; never an engine.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from celeriac.brokers.base import REVOCATIONS, Broker, Revocation
from celeriac.exceptions import ImproperlyConfigured
from celeriac.messages import revocation
from celeriac.testing.contracts.broker_dead_letters import DeadLetterContract
from celeriac.testing.contracts.broker_delays import DelayContract
from celeriac.testing.contracts.broker_leases import LeaseContract
from celeriac.testing.contracts.broker_queues import PublishFetchContract
from celeriac.testing.contracts.broker_settling import SettleContract
from celeriac.testing.contracts.broker_support import (
    EARLY,
    SLACK,
    BrokerFactory,
    BrokerSuite,
    in_event_loop,
    new_key,
)


def _refuses_key_value(broker: Broker) -> bool:
    """An engine without shared key-value state (``supports_key_value = False``) must refuse
    idempotency keys loudly, never pretend: True when it does, so the test ends there."""
    if broker.supports_key_value:
        return False
    with pytest.raises(ImproperlyConfigured):
        broker.reserve(new_key("idem"), "task-1", 60.0)
    with pytest.raises(ImproperlyConfigured):
        broker.release(new_key("idem"), "task-1")
    return True


async def _refuses_buckets(broker: Broker) -> bool:
    """The same for cluster token buckets."""
    if broker.supports_key_value:
        return False
    with pytest.raises(ImproperlyConfigured, match="rate_limit_scope"):
        await broker.acquire(new_key("bucket"), 10.0, 10.0)
    return True


class SharedStateContract(BrokerSuite):
    """State shared by the whole cluster: revocations, idempotency keys, token buckets."""

    # -- revocations ------------------------------------------------------------------------
    def test_revoked_ids_are_kept_until_their_ttl(self, make_broker: BrokerFactory) -> None:
        broker, short, long = make_broker(), new_key("short"), new_key("long")
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
        broker, task_id = make_broker(), new_key("task")
        broker.revoke([task_id], 60.0)
        broker.revoke([task_id], 0.2)  # a shorter second revoke does not cut the first
        time.sleep(0.4)
        assert task_id in broker.revoked_ids()

    @in_event_loop
    async def test_subscribers_hear_each_revoke_until_closed(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, first, second = make_broker(), new_key("a"), new_key("b")
        subscription = await broker.subscribe(REVOCATIONS)

        async def heard() -> Revocation:
            payload = await subscription.get(SLACK)
            notice = revocation.decode(payload or b"")
            assert notice is not None, f"not a revocation message: {payload!r}"
            return notice.heard_now()

        try:
            started = time.time()
            # From another thread, as a web process revokes while the worker's loop runs.
            await asyncio.to_thread(broker.revoke, [first, second], 30.0, terminate=True)
            got = await heard()
            assert got.task_ids == (first, second)
            assert (got.terminate, got.signal) == (True, "SIGTERM")
            assert started + 30.0 - SLACK <= got.expires[first] <= time.time() + 30.0 + SLACK
            broker.revoke([first], 30.0, signal="SIGKILL")  # from the loop's own thread
            got = await heard()
            assert (got.task_ids, got.terminate, got.signal) == ((first,), False, "SIGKILL")
        finally:
            await subscription.close()
        broker.revoke([second], 30.0)
        assert await subscription.get(0.2) is None, "a closed subscription hears nothing"

    # -- idempotency keys -------------------------------------------------------------------
    def test_reserve_keeps_the_first_value_until_its_ttl(self, make_broker: BrokerFactory) -> None:
        broker, key = make_broker(), new_key("idem")
        if _refuses_key_value(broker):
            return
        assert broker.reserve(key, "task-1", 0.3) is None
        assert broker.reserve(key, "task-2", 0.3) == "task-1"
        assert broker.reserve(new_key("other"), "task-3", 0.3) is None, "keys are independent"
        time.sleep(0.3 + 0.2)
        assert broker.reserve(key, "task-4", 60.0) is None, "an expired key is free again"
        assert broker.reserve(key, "task-5", 60.0) == "task-4"
        with pytest.raises(ValueError, match="ttl"):
            broker.reserve(key, "task-6", -1)

    def test_reserve_many_answers_as_reserve_does(self, make_broker: BrokerFactory) -> None:
        broker, taken, free = make_broker(), new_key("idem"), new_key("idem")
        if _refuses_key_value(broker):
            with pytest.raises(ImproperlyConfigured):
                broker.reserve_many([(taken, "task-1")], 60.0)
            return
        assert broker.reserve(taken, "task-1", 60.0) is None
        assert broker.reserve_many([(taken, "task-2"), (free, "task-3")], 60.0) == ["task-1", None]
        assert broker.reserve(free, "task-4", 60.0) == "task-3"
        assert broker.reserve_many([], 60.0) == []

    def test_release_frees_only_its_own_reservation(self, make_broker: BrokerFactory) -> None:
        broker, key = make_broker(), new_key("idem")
        if _refuses_key_value(broker):
            return
        assert broker.reserve(key, "task-1", 60.0) is None
        assert broker.release(key, "task-2") is False, "not the holder: nothing changes"
        assert broker.reserve(key, "task-3", 60.0) == "task-1"
        assert broker.release(key, "task-1") is True
        assert broker.release(key, "task-1") is False
        assert broker.reserve(key, "task-4", 60.0) is None

    # -- shared token buckets ---------------------------------------------------------------
    @in_event_loop
    async def test_token_bucket_gives_capacity_then_paces_at_rate(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, key = make_broker(), new_key("bucket")
        if await _refuses_buckets(broker):
            return
        waits = [await broker.acquire(key, 10.0, 10.0) for _ in range(10)]
        assert waits == [0.0] * 10, "a new bucket starts full"
        wait = await broker.acquire(key, 10.0, 10.0)
        assert 0.0 < wait <= 0.1 + EARLY, f"empty at 10/s: the next token is <= 0.1s away ({wait})"
        assert await broker.acquire(new_key("other"), 10.0, 10.0) == 0.0, "buckets are independent"
        await asyncio.sleep(wait + 0.01)
        # The refused call took nothing, so one refill is enough for one token; no more.
        assert await broker.acquire(key, 10.0, 10.0) == 0.0, "refilled at the rate"
        assert await broker.acquire(key, 10.0, 10.0) > 0.0, "refilled faster than the rate"
        with pytest.raises(ValueError, match="rate"):
            await broker.acquire(key, 0.0, 10.0)
        with pytest.raises(ValueError, match="capacity"):
            await broker.acquire(key, 10.0, 0.5)

    @in_event_loop
    async def test_token_bucket_is_shared_by_concurrent_callers(
        self, make_broker: BrokerFactory
    ) -> None:
        broker, key = make_broker(), new_key("bucket")
        if await _refuses_buckets(broker):
            return
        waits = await asyncio.gather(*(broker.acquire(key, 1.0, 5.0) for _ in range(20)))
        assert sorted(waits)[:5] == [0.0] * 5
        assert all(w > 0.5 for w in sorted(waits)[5:]), "exactly capacity tokens were given"


class BrokerContract(
    PublishFetchContract,
    SettleContract,
    DeadLetterContract,
    DelayContract,
    LeaseContract,
    SharedStateContract,
):
    """Subclass as ``TestXBroker(BrokerContract)`` with a ``make_broker`` fixture that
    returns a ``BrokerFactory``, closes what it built and isolates state (every test here
    also uses fresh, unique queue names)."""


__all__ = ["BrokerContract", "BrokerFactory", "SharedStateContract"]
