"""The Redis broker under failure: killed consumers, long tasks, far ETAs, bad entries,
restarts and an unsafe eviction policy. Real Redis, real processes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import redis

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import BrokerConnectionError, BrokerError, ImproperlyConfigured
from celeriac.testing import drain
from tests.integration.conftest import PrivateRedis, free_port

ROOT = Path(__file__).resolve().parents[2]


def make_broker(url: str, prefix: str, lease: float = 30.0, **options: object) -> RedisBroker:
    return RedisBroker(
        url, lease_seconds=lease, transport_options={"key_prefix": prefix, **options}
    )


def test_tasks_run_end_to_end_over_redis(redis_url: str, redis_prefix: str) -> None:
    app = Celery(
        "t",
        broker=redis_url,
        backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix},
    )

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = [add.delay(n, n) for n in range(5)]
    assert app.broker.queue_length("celery") == 5
    assert drain(app) == 5
    assert [r.get(timeout=1) for r in results] == [0, 2, 4, 6, 8]
    app.close()


def test_a_killed_consumer_gives_its_message_back_after_one_lease(
    redis_url: str, redis_prefix: str
) -> None:
    lease = 1.5
    broker = make_broker(redis_url, redis_prefix, lease)
    broker.publish(OutboundMessage("work", b"payload", "m-1"))
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import asyncio, sys, time
            from celeriac.brokers.redis import RedisBroker
            broker = RedisBroker({redis_url!r}, lease_seconds={lease},
                                 transport_options={{"key_prefix": {redis_prefix!r}}})
            [d] = asyncio.run(broker.fetch(["work"], 1, 5))
            print(d.message_id, flush=True)
            time.sleep(60)  # hold the message without acking until killed
        """)],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    )  # fmt: skip
    with holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"m-1"
        os.kill(holder.pid, signal.SIGKILL)  # no ack, no goodbye: a dead worker
        killed_at = time.monotonic()
        holder.wait(timeout=10)

    async def reclaim() -> tuple[list[object], float]:
        early = await broker.fetch(["work"], 1, lease * 0.5)
        assert early == [], "handed out again before the lease ran out"
        got = await broker.fetch(["work"], 1, lease + 3)
        await broker.close_async()
        return got, time.monotonic() - killed_at

    [again], waited = asyncio.run(reclaim())
    assert again.message_id == "m-1" and again.delivery_count == 2
    assert lease * 0.9 <= waited <= lease + 3
    broker.close()


def test_a_far_eta_is_delivered_once_while_its_holder_keeps_the_lease(
    redis_url: str, redis_prefix: str
) -> None:
    lease = 0.5
    first = make_broker(redis_url, redis_prefix, lease)
    second = make_broker(redis_url, redis_prefix, lease)
    first.publish(OutboundMessage("eta", b"x", "m-eta", delay=1.0))  # twice the lease

    async def scenario() -> tuple[int, int]:
        [held] = await first.fetch(["eta"], 1, 5)
        assert first.delayed_count("eta") == 0

        other_fetch = asyncio.create_task(second.fetch(["eta"], 1, lease * 4))
        while not other_fetch.done():  # a long task: its holder heartbeats for 4 leases
            assert await first.extend([held]) == []
            await asyncio.wait({other_fetch}, timeout=lease / 3)  # the heartbeat interval
        others = other_fetch.result()
        assert await held.ack()
        count = held.delivery_count
        await first.close_async()
        await second.close_async()
        return len(others), count

    assert asyncio.run(scenario()) == (0, 1)
    first.close()
    second.close()


def test_entries_written_straight_into_the_stream_are_dead_lettered(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Celery(
        "t",
        broker=redis_url,
        backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix},
    )

    @app.task
    def ok() -> str:
        return "still working"

    raw = redis.Redis.from_url(redis_url)
    stream = app.broker.keys("celery").stream(0)
    raw.xadd(stream, {"m": "bad-1", "p": b"\x00not a message"})
    raw.xadd(stream, {"unexpected": "fields"})
    result = ok.delay()
    with caplog.at_level(logging.ERROR, logger="celeriac.worker"):
        assert drain(app) == 2  # the entry without fields never reaches the worker
    assert result.get(timeout=1) == "still working"
    reasons = sorted(letter.reason for letter in app.broker.dead_letters("celery"))
    assert reasons == [DeadLetterReason.MALFORMED, DeadLetterReason.MALFORMED]
    raw.close()
    app.close()


def test_consumption_resumes_after_redis_restarts(private_redis: PrivateRedis) -> None:
    broker = make_broker(private_redis.url, "restart")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(10)])

    async def consume(count: int, timeout: float) -> list[str]:
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while len(seen) < count and time.monotonic() < deadline:
            for delivery in await broker.fetch(["q"], count - len(seen), 1):
                assert await delivery.ack()
                seen.append(delivery.message_id)
        await broker.close_async()
        return seen

    first = asyncio.run(consume(5, 5))
    private_redis.restart()  # kill -9 and start again: AOF keeps every acknowledged write
    rest = asyncio.run(consume(5, 15))
    assert sorted(first + rest) == sorted(f"m-{n}" for n in range(10))
    broker.close()


def test_settles_survive_redis_forgetting_its_scripts(private_redis: PrivateRedis) -> None:
    broker = make_broker(private_redis.url, "flush")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(6)])

    async def take_and_ack() -> list[bool]:
        deliveries = await broker.fetch(["q"], 6, 1)
        assert len(deliveries) == 6
        broker.client.script_flush()  # as after a restart: every script must load again
        acked = await asyncio.gather(*(d.ack() for d in deliveries))
        again = await asyncio.gather(*(d.ack() for d in deliveries))
        await broker.close_async()
        return [*acked, *again]

    assert asyncio.run(take_and_ack()) == [True] * 6 + [False] * 6  # each applied once
    assert broker.queue_length("q") == 0
    broker.close()


def test_settles_after_redis_lost_its_data_are_refused_not_errors(
    private_redis: PrivateRedis,
) -> None:
    """A broker restarted without persistence has no stream and no group: the deliveries a
    worker held before are gone, so settling them is refused (as for a lost lease) and a
    heartbeat reports them lost, instead of raising a server error (NOGROUP)."""
    broker = make_broker(private_redis.url, "lost")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(4)])

    async def settle_after_loss() -> tuple[list[bool], list[str]]:
        d = await broker.fetch(["q"], 4, 1)
        assert len(d) == 4
        broker.client.flushall()  # what a restart of a server that keeps nothing leaves
        lost = await broker.extend(d)
        settled = await asyncio.gather(
            d[0].ack(batch=True), d[1].ack(), d[2].requeue(),
            d[3].dead_letter(DeadLetterReason.REJECTED, "no"),
        )  # fmt: skip
        await broker.close_async()
        return list(settled), [x.message_id for x in lost]

    settled, lost = asyncio.run(settle_after_loss())
    assert settled == [False] * 4
    assert lost == [f"m-{n}" for n in range(4)]
    assert broker.dead_letters("q") == []
    broker.close()


def test_settles_batched_in_one_round_trip_each_apply_once(
    redis_url: str, redis_prefix: str
) -> None:
    """Acks of one stream go in one script call: fencing still holds per message, and the
    other outcomes in the same round trip still apply."""
    broker = make_broker(redis_url, redis_prefix)
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(5)])

    async def settle_together() -> list[bool]:
        d = await broker.fetch(["q"], 5, 1)
        assert [x.message_id for x in d] == [f"m-{n}" for n in range(5)]
        settled = await asyncio.gather(
            d[0].ack(), d[1].requeue(), d[2].ack(), d[0].ack(),  # d[0] twice: once applies
            d[3].dead_letter(DeadLetterReason.REJECTED, "no"), d[4].ack(),
        )  # fmt: skip
        await broker.close_async()
        return list(settled)

    assert asyncio.run(settle_together()) == [True, True, True, False, True, True]
    assert broker.queue_length("q") == 1  # m-1, requeued
    assert [x.message_id for x in broker.dead_letters("q")] == ["m-3"]
    broker.close()


def test_a_fetch_in_an_outage_raises_at_once_and_the_next_gets_the_message(
    private_redis: PrivateRedis,
) -> None:
    """The worker's consumer reports the outage and spaces its attempts; so the fetch
    itself does not ride out an outage in silence, however short."""
    broker = make_broker(private_redis.url, "outage")

    async def scenario() -> list[str]:
        private_redis.stop()
        started = time.monotonic()
        with pytest.raises(BrokerConnectionError, match="cannot reach the Redis broker"):
            await broker.fetch(["q"], 1, 8)
        assert time.monotonic() - started < 4, "raised at once, not at the fetch's timeout"
        await asyncio.to_thread(private_redis.start)
        await asyncio.to_thread(broker.publish, OutboundMessage("q", b"p", "after"))
        got = await broker.fetch(["q"], 1, 8)
        await broker.close_async()
        return [d.message_id for d in got]

    assert asyncio.run(scenario()) == ["after"]
    broker.close()


def test_publishing_to_a_down_redis_raises_a_clear_error(redis_prefix: str) -> None:
    broker = make_broker("redis://:secret@127.0.0.1:1/0", redis_prefix)
    with pytest.raises(BrokerConnectionError, match=r"redis://:\*\*@127\.0\.0\.1:1/0") as info:
        broker.publish(OutboundMessage("q", b"p", "m"))
    assert "secret" not in str(info.value)


def test_an_evicting_redis_is_reported_and_can_be_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = PrivateRedis(tmp_path, "--maxmemory-policy", "allkeys-lru")
    if server.binary is None:
        pytest.fail("redis-server missing")
    server.start()
    try:
        with caplog.at_level(logging.WARNING, logger="celeriac.brokers.redis"):
            warning = make_broker(server.url, "safety").check_safety()
        assert warning is not None and "maxmemory-policy=allkeys-lru" in warning
        assert "noeviction" in caplog.text
        refusing = make_broker(server.url, "safety", eviction_policy="refuse")
        with pytest.raises(ImproperlyConfigured, match="refuses to start"):
            refusing.check_safety()
    finally:
        server.stop()


def test_the_default_noeviction_policy_passes(redis_url: str, redis_prefix: str) -> None:
    assert make_broker(redis_url, redis_prefix).check_safety() is None


def test_sentinel_url_finds_the_master(private_redis: PrivateRedis, tmp_path: Path) -> None:
    sentinel_port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {sentinel_port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor mymaster 127.0.0.1 {private_redis.port} 1\n"
    )
    assert private_redis.binary is not None
    sentinel = subprocess.Popen(
        [private_redis.binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL
    )
    try:
        probe = redis.Redis(port=sentinel_port, socket_connect_timeout=0.2)
        deadline = time.monotonic() + 10
        while True:  # wait for the sentinel process to answer (start-up)
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "sentinel did not start"
                time.sleep(0.05)
        probe.close()
        broker = RedisBroker(
            f"sentinel://127.0.0.1:{sentinel_port}/0",
            transport_options={"master_name": "mymaster", "key_prefix": "via-sentinel"},
        )
        broker.publish(OutboundMessage("q", b"p", "m-sentinel"))

        async def take() -> list[str]:
            got = await broker.fetch(["q"], 1, 5)
            for delivery in got:
                await delivery.ack()
            await broker.close_async()
            return [d.message_id for d in got]

        assert asyncio.run(take()) == ["m-sentinel"]
        broker.close()
    finally:
        sentinel.kill()
        sentinel.wait(timeout=10)


def test_sentinel_url_without_master_name_says_what_to_set() -> None:
    with pytest.raises(ImproperlyConfigured, match="master_name"):
        RedisBroker("sentinel://127.0.0.1:26379")


def test_consumers_of_dead_workers_are_forgotten(redis_url: str, redis_prefix: str) -> None:
    # A dead worker's consumer holds nothing and stays idle; a zero threshold stands in
    # for the default hour.
    broker = make_broker(redis_url, redis_prefix, consumer_prune_idle=0)
    stream = broker.keys("q").stream(0)
    raw = redis.Redis.from_url(redis_url)
    raw.xgroup_create(stream, "celeriac", id="0", mkstream=True)
    raw.xgroup_createconsumer(stream, "celeriac", "dead-worker")
    raw.xadd(stream, {"m": "held", "p": b"x"})
    raw.xreadgroup("celeriac", "busy-worker", {stream: ">"}, count=1)  # holds one message

    async def idle_fetch() -> None:
        await broker.fetch(["q"], 1, 0.05)  # nothing ready: the idle path prunes
        await broker.close_async()

    asyncio.run(idle_fetch())
    names = {c["name"] for c in raw.xinfo_consumers(stream, "celeriac")}
    assert b"dead-worker" not in names and b"busy-worker" in names
    raw.close()
    broker.close()


def test_a_dead_consumers_message_is_found_behind_many_live_ones(
    redis_url: str, redis_prefix: str
) -> None:
    lease = 0.5
    holder = make_broker(redis_url, redis_prefix, lease)
    reaper = make_broker(redis_url, redis_prefix, lease)
    holder.publish_many([OutboundMessage("q", b"p", f"m-{n:02}") for n in range(31)])
    raw = redis.Redis.from_url(redis_url)

    async def scenario() -> list[str]:
        held = await holder.fetch(["q"], 30, 5)  # the 30 oldest, kept alive below
        assert len(held) == 30
        stream = holder.keys("q").stream(0)
        raw.xreadgroup("celeriac", "dead-worker", {stream: ">"}, count=1)  # never renewed
        taking = asyncio.create_task(reaper.fetch(["q"], 1, lease + 5))
        while not taking.done():
            assert await holder.extend(held) == []
            await asyncio.wait({taking}, timeout=lease / 3)  # the holder's heartbeat
        got = taking.result()
        await holder.close_async()
        await reaper.close_async()
        return [d.message_id for d in got]

    assert asyncio.run(scenario()) == ["m-30"]
    raw.close()
    holder.close()
    reaper.close()


def test_a_full_redis_refuses_publishes_clearly_and_keeps_draining(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url, "full")
    raw = redis.Redis.from_url(private_redis.url)
    try:
        broker.publish(OutboundMessage("q", b"ready", "m-ready"))
        broker.publish(OutboundMessage("q", b"later", "m-later", delay=0.05))
        raw.set("ballast", b"x" * 2_000_000)
        # Well past the limit, deterministically: noeviction now refuses every write.
        raw.config_set("maxmemory-policy", "noeviction")
        raw.config_set("maxmemory", "1mb")
        with pytest.raises(BrokerError, match="out of memory") as info:
            broker.publish(OutboundMessage("q", b"p", "m-refused"))
        assert not isinstance(info.value, redis.RedisError)  # a celeriac error, not raw

        async def drain() -> list[str]:
            await asyncio.sleep(0.1)  # let the delayed message fall due (it cannot move)
            got = await broker.fetch(["q"], 5, 2)
            for delivery in got:
                assert await delivery.ack()
            await broker.close_async()
            return [d.message_id for d in got]

        assert asyncio.run(drain()) == ["m-ready"]  # ready work still flows while full
        raw.config_set("maxmemory", "0")  # memory again: the due message moves on

        async def later() -> list[str]:
            got = await broker.fetch(["q"], 5, 2)
            await broker.close_async()
            return [d.message_id for d in got]

        assert asyncio.run(later()) == ["m-later"]
    finally:
        raw.close()
        broker.close()


def test_a_short_socket_timeout_does_not_read_as_an_outage(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = make_broker(redis_url, redis_prefix, socket_timeout=0.5)

    async def idle() -> list[object]:
        got = await broker.fetch(["q"], 1, 2.0)  # longer than the socket timeout
        await broker.close_async()
        return got

    with caplog.at_level(logging.WARNING, logger="celeriac.brokers.redis"):
        assert asyncio.run(idle()) == []
    assert "cannot reach" not in caplog.text
    broker.close()


def test_fetches_go_on_after_redis_forgets_its_scripts_or_drops_the_connection(
    private_redis: PrivateRedis,
) -> None:
    # A worker's fetches are written pre-packed on a connection of their own: a lost
    # script is loaded again, a killed connection replaced, and nothing is lost.
    broker = make_broker(private_redis.url, "packed")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(6)])
    raw = redis.Redis.from_url(private_redis.url)

    async def fetch_through_trouble() -> list[str]:
        seen = [d.message_id for d in await broker.fetch(["q"], 2, 1)]
        raw.script_flush()  # as after a restart: every script must load again
        seen += [d.message_id for d in await broker.fetch(["q"], 2, 1)]
        raw.client_kill_filter(_type="normal", skipme=True)  # every worker connection
        with contextlib.suppress(BrokerConnectionError):
            seen += [d.message_id for d in await broker.fetch(["q"], 2, 1)]  # (may see it)
        seen += [d.message_id for d in await broker.fetch(["q"], 2, 1)]
        await broker.close_async()
        return seen

    seen = asyncio.run(fetch_through_trouble())
    assert seen == [f"m-{n}" for n in range(len(seen))] and len(seen) >= 4
    assert raw.xlen(broker.keys("q").stream(0)) == 6  # none acked: every one still there
    raw.close()
    broker.close()
