"""An idle fetch on Redis waits in a blocking XREADGROUP that hands out what arrives:
one round trip from publish to hand-out, one waiting worker woken per message, hostile
entries dead-lettered there too, and a delayed message still re-plans the wait. The
fetches right after a hand-out wait again without a fetch script, yet housekeeping still
comes in time."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import redis

from celeriac.brokers.base import DeadLetterReason, Delivery, OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis import broker as broker_module
from celeriac.brokers.redis.keys import GROUP
from tests.integration.conftest import PrivateRedis

WAIT_DEADLINE = 10.0  # seconds: a fetch that should be blocked and is not by then fails


def make_broker(url: str, **options: object) -> RedisBroker:
    """A broker on a server of the test's own: the server's client list is the test's."""
    return RedisBroker(url, transport_options=options)


async def blocked(raw: redis.Redis, count: int = 1) -> None:
    """Until ``count`` clients wait in a blocking XREADGROUP (the server's own list)."""
    deadline = time.monotonic() + WAIT_DEADLINE
    while len(waiting_readers(raw)) < count:
        assert time.monotonic() < deadline, f"no fetch blocked: {raw.client_list()}"
        await asyncio.sleep(0.01)


def waiting_readers(raw: redis.Redis) -> list[dict[str, Any]]:
    """The clients blocked in an XREADGROUP now."""
    clients = raw.client_list()
    return [c for c in clients if c.get("cmd") == "xreadgroup" and "b" in c.get("flags", "")]


def script_calls(raw: redis.Redis) -> int:
    stats: dict[str, Any] = raw.info("commandstats")
    return sum(int(stats.get(name, {}).get("calls", 0)) for name in ("cmdstat_evalsha",))


def test_a_message_sent_during_the_wait_is_handed_out_by_the_wait_itself(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url)
    raw = redis.Redis.from_url(private_redis.url, decode_responses=True)

    async def scenario() -> tuple[list[Delivery], int]:
        fetching = asyncio.create_task(broker.fetch(["q"], 4, WAIT_DEADLINE))
        await blocked(raw)
        scripts_before = script_calls(raw)
        broker.publish(OutboundMessage("q", b"payload", "m-1", priority=0))
        got = await fetching
        scripts = script_calls(raw) - scripts_before
        assert await got[0].ack()
        await broker.close_async()
        return got, scripts

    got, scripts = asyncio.run(scenario())
    assert [(d.message_id, d.payload, d.delivery_count, d.priority) for d in got] == [
        ("m-1", b"payload", 1, 0)
    ]
    assert scripts == 0  # no fetch script between the publish and the hand-out
    stream = broker.keys("q").stream(0)
    assert raw.xpending(stream, GROUP)["pending"] == 0 and raw.xlen(stream) == 0
    raw.close()
    broker.close()


def test_one_message_wakes_one_of_two_waiting_workers(private_redis: PrivateRedis) -> None:
    first, second = make_broker(private_redis.url), make_broker(private_redis.url)
    raw = redis.Redis.from_url(private_redis.url, decode_responses=True)

    async def scenario() -> tuple[list[Delivery], int, list[Delivery]]:
        fetches = [asyncio.create_task(b.fetch(["q"], 4, 1.5)) for b in (first, second)]
        await blocked(raw, count=2)
        first.publish(OutboundMessage("q", b"p", "only-one"))
        done, waiting = await asyncio.wait(fetches, return_when=asyncio.FIRST_COMPLETED)
        still_blocked = len(waiting_readers(raw))
        other = await waiting.pop()
        await first.close_async()
        await second.close_async()
        return done.pop().result(), still_blocked, other

    woken, still_blocked, other = asyncio.run(scenario())
    assert [d.message_id for d in woken] == ["only-one"]
    assert still_blocked == 1  # the other worker never woke for it
    assert other == []
    raw.close()
    first.close()
    second.close()


def test_hostile_entries_arriving_during_the_wait_are_dead_lettered_and_it_goes_on(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url)
    raw = redis.Redis.from_url(private_redis.url)
    stream = broker.keys("q").stream(0)

    async def dead_letters(count: int) -> None:
        deadline = time.monotonic() + WAIT_DEADLINE
        while raw.xlen(broker.keys("q").dead) < count:
            assert time.monotonic() < deadline, "the hostile entry was not dead-lettered"
            await asyncio.sleep(0.01)

    async def scenario() -> list[str]:
        handed = []
        hostile = [{"m": "no-payload"}, {"m": "odd-count", "p": b"x", "d": "many"}]
        for count, entry in enumerate(hostile, 1):
            fetching = asyncio.create_task(broker.fetch(["q"], 1, WAIT_DEADLINE))
            await blocked(raw)
            raw.xadd(stream, entry)  # ends the wait: refused there, and the fetch waits on
            await dead_letters(count)
            await blocked(raw)
            assert not fetching.done()
            broker.publish(OutboundMessage("q", b"good", f"after-{entry['m']}"))
            for delivery in await fetching:
                handed.append(delivery.message_id)
                assert await delivery.ack()
        await broker.close_async()
        return handed

    assert asyncio.run(scenario()) == ["after-no-payload", "after-odd-count"]
    letters = broker.dead_letters("q")
    assert [(letter.reason, letter.detail) for letter in letters] == [
        (DeadLetterReason.MALFORMED, "stream entry lacks the m or p field"),
        (DeadLetterReason.MALFORMED, "stream entry field d (deliveries before) is not a count"),
    ]
    handed_back = broker.take_dead_lettered()  # the worker ends the calls of these
    assert [letter.message_id for letter in handed_back] == ["no-payload", "odd-count"]
    assert raw.xpending(stream, GROUP)["pending"] == 0
    raw.close()
    broker.close()


def test_a_delayed_message_sent_during_the_wait_comes_on_time_and_no_wake_up_is_left_held(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url)
    raw = redis.Redis.from_url(private_redis.url, decode_responses=True)

    async def scenario() -> tuple[list[Delivery], float]:
        fetching = asyncio.create_task(broker.fetch(["q"], 4, 30))
        await blocked(raw)
        sent = time.monotonic()
        broker.publish(OutboundMessage("q", b"p", "soon", delay=0.3))
        got = await fetching
        waited = time.monotonic() - sent
        await broker.close_async()
        return got, waited

    got, waited = asyncio.run(scenario())
    assert [d.message_id for d in got] == ["soon"]
    # Without the wake-up the wait would have run its 30 s; with it, the due time.
    assert 0.25 <= waited < 5
    assert raw.xpending(broker.keys("q").wake, GROUP)["pending"] == 0
    raw.close()
    broker.close()


def test_news_on_several_levels_at_once_beyond_the_limit_goes_back_unseen(
    private_redis: PrivateRedis,
) -> None:
    # The race the read guards against: entries on two levels arrive between the fetch
    # script and the blocking read, which then returns both at once. Staged by hand.
    broker = make_broker(private_redis.url)

    async def scenario() -> tuple[list[Delivery], list[Delivery]]:
        assert await broker.fetch(["q"], 1, 0.05) == []  # an idle fetch makes the groups
        keys = broker.keys("q")
        broker.publish_many(
            [OutboundMessage("q", b"low", "low", priority=0),
             OutboundMessage("q", b"high", "high", priority=9)]
        )  # fmt: skip
        client = broker._aclient()[0]
        ready = {key: ("q", index) for index, key in enumerate(keys.streams, 1)}
        first = await broker._read_ready(client, [*keys.streams, keys.wake], ready, 1, 0.1)
        after = await broker.fetch(["q"], 4, 0)
        for delivery in [*first, *after]:
            assert await delivery.ack()
        await broker.close_async()
        return first, after

    first, after = asyncio.run(scenario())
    assert [(d.message_id, d.priority) for d in first] == [("high", 9)]
    assert [(d.message_id, d.delivery_count) for d in after] == [("low", 1)]
    broker.close()


def test_a_dead_workers_wake_up_entries_do_not_keep_its_consumer(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url, consumer_prune_idle=0)
    wake = broker.keys("q").wake
    raw = redis.Redis.from_url(private_redis.url)
    raw.xgroup_create(wake, GROUP, id="$", mkstream=True)
    raw.xadd(wake, {"w": "1"})
    raw.xreadgroup(GROUP, "dead-worker", {wake: ">"}, count=1)  # died before its XACK

    async def idle_fetch() -> None:
        # Nothing ready: the idle wait prunes. A fetch whose first script call outlasts
        # its timeout returns without waiting, so the timeout must outlast a busy machine's
        # round trip (0.05 s did not, under a loaded CI run).
        await broker.fetch(["q"], 1, 1.0)
        await broker.close_async()

    asyncio.run(idle_fetch())
    assert b"dead-worker" not in {c["name"] for c in raw.xinfo_consumers(wake, GROUP)}
    raw.close()
    broker.close()


def test_fetches_right_after_a_hand_out_wait_again_without_a_fetch_script(
    private_redis: PrivateRedis, monkeypatch: Any
) -> None:
    # Housekeeping is due only every quarter lease here, so the plan outlasts the test.
    monkeypatch.setattr(broker_module, "HOUSEKEEPING_EVERY", 60.0)
    broker = make_broker(private_redis.url)
    raw = redis.Redis.from_url(private_redis.url, decode_responses=True)

    async def scenario() -> tuple[list[str], int]:
        assert await broker.fetch(["q"], 4, 0.05) == []  # the script finds it empty: a plan
        scripts_before = script_calls(raw)
        got: list[Delivery] = []
        for n in range(5):  # sporadic messages, each arriving while the worker waits
            fetching = asyncio.create_task(broker.fetch(["q"], 4, WAIT_DEADLINE))
            await blocked(raw)
            broker.publish(OutboundMessage("q", b"p", f"m-{n}"))
            got.extend(await fetching)
        scripts = script_calls(raw) - scripts_before
        for delivery in got:
            assert await delivery.ack()
        await broker.close_async()
        return [d.message_id for d in got], scripts

    ids, scripts = asyncio.run(scenario())
    assert ids == [f"m-{n}" for n in range(5)]
    assert scripts == 0  # each fetch went straight back to the blocking read
    raw.close()
    broker.close()


def test_a_dead_workers_lapsed_lease_is_taken_back_while_messages_keep_arriving(
    private_redis: PrivateRedis,
) -> None:
    # The plan a wait leaves standing must not keep housekeeping away for good: with a
    # message arriving every few milliseconds, the fetches still take back a lapsed lease.
    broker = make_broker(private_redis.url)
    broker.lease_seconds = 1.0
    raw = redis.Redis.from_url(private_redis.url)

    async def scenario() -> tuple[float, int]:
        assert await broker.fetch(["q"], 4, 0.05) == []  # makes the groups
        broker.publish(OutboundMessage("q", b"orphan", "orphan"))
        stream = broker.keys("q").stream(0)
        raw.xreadgroup(GROUP, "dead-worker", {stream: ">"}, count=1)  # then it died
        started, sent = time.monotonic(), 0
        while time.monotonic() - started < WAIT_DEADLINE:
            broker.publish(OutboundMessage("q", b"p", f"steady-{sent}"))
            sent += 1
            got = await broker.fetch(["q"], 4, WAIT_DEADLINE)
            for delivery in got:
                assert await delivery.ack()
            if any(d.message_id == "orphan" for d in got):
                await broker.close_async()
                return time.monotonic() - started, sent
            await asyncio.sleep(0.005)  # the pace of the steady arrivals
        await broker.close_async()
        return WAIT_DEADLINE, sent

    waited, sent = asyncio.run(scenario())
    assert waited < WAIT_DEADLINE, f"the lapsed lease was never taken back ({sent} sent)"
    assert waited >= 0.9  # (not before the lease ran out)
    raw.close()
    broker.close()
