"""The Redis broker's batching: batched acks share one script call and keep fencing, a
warm stop leaves nothing to deliver again, and the high marker lets priorities through
whoever wrote the message. Real Redis."""

from __future__ import annotations

import asyncio

import redis

from celeriac import Celery
from celeriac._futures import cancel_and_wait
from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import BrokerError
from celeriac.testing import start_worker
from tests.integration.conftest import PrivateRedis


def make_broker(url: str, prefix: str, lease: float = 30.0) -> RedisBroker:
    return RedisBroker(url, lease_seconds=lease, transport_options={"key_prefix": prefix})


def test_batched_acks_go_in_one_script_call_and_keep_fencing(
    private_redis: PrivateRedis,
) -> None:
    broker = make_broker(private_redis.url, "batch")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(4)])
    client = redis.Redis.from_url(private_redis.url)

    def evalsha_calls() -> int:
        return int(client.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))

    async def ack_all() -> tuple[list[bool], int]:
        d = await broker.fetch(["q"], 4, 1)
        assert len(d) == 4
        assert await d[0].ack()  # acked alone, at once: its batched ack below is stale
        before = evalsha_calls()
        acked = await asyncio.gather(*(x.ack(batch=True) for x in d))
        calls = evalsha_calls() - before
        await broker.close_async()
        return list(acked), calls

    acked, calls = asyncio.run(ack_all())
    assert acked == [False, True, True, True]  # fencing holds inside the batch
    assert calls == 1  # one ack_many call for the four
    assert client.xlen("batch:{q}:s0") == 0  # acked entries are deleted
    client.close()
    broker.close()


def test_a_batched_ack_returns_while_other_deliveries_stay_out(
    redis_url: str, redis_prefix: str
) -> None:
    """The linger is bounded: an ack does not wait for deliveries that are never settled."""
    broker = make_broker(redis_url, redis_prefix)
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(3)])

    async def ack_one() -> bool:
        first, *_ = await broker.fetch(["q"], 3, 1)
        acked = await asyncio.wait_for(first.ack(batch=True), 5)
        await broker.close_async()
        return acked

    assert asyncio.run(ack_one())
    assert broker.queue_length("q") == 0  # the other two are in flight, none is ready
    broker.close()


def test_a_warm_stop_leaves_nothing_to_deliver_again(redis_url: str, redis_prefix: str) -> None:
    app = Celery(
        "batched", broker=redis_url, backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip

    @app.task
    def double(n: int) -> int:
        return n * 2

    with start_worker(app, concurrency=4):
        results = [double.delay(n) for n in range(40)]
        assert [r.get(timeout=20) for r in results] == [n * 2 for n in range(40)]
    # Every ack was applied before the worker stopped: no entry is pending or ready.
    client = redis.Redis.from_url(redis_url)
    stream = f"{redis_prefix}:{{celery}}:s0"
    assert client.xpending(stream, "celeriac")["pending"] == 0
    assert client.xlen(stream) == 0
    client.close()
    app.close()


def test_a_requeue_above_level_0_is_read_before_level_0(redis_url: str, redis_prefix: str) -> None:
    broker = make_broker(redis_url, redis_prefix)
    broker.publish_many([OutboundMessage("q", b"p", f"low-{n}") for n in range(3)])
    broker.publish(OutboundMessage("q", b"p", "high", priority=9))

    async def take() -> list[str]:
        high, low = await broker.fetch(["q"], 2, 1)  # level 3 read to its end: marker down
        assert await high.requeue()  # back into level 3: the marker goes up with it
        assert await low.ack()
        [again] = await broker.fetch(["q"], 1, 1)
        rest = await broker.fetch(["q"], 5, 1)
        await broker.close_async()
        return [high.message_id, low.message_id, again.message_id, *(d.message_id for d in rest)]

    assert asyncio.run(take()) == ["high", "low-0", "high", "low-1", "low-2"]
    broker.close()


def test_a_message_written_above_level_0_without_the_marker_is_still_fetched(
    redis_url: str, redis_prefix: str
) -> None:
    """A writer that does not raise the marker (an older producer): housekeeping reads
    every level, so the message comes out all the same."""
    broker = make_broker(redis_url, redis_prefix)
    broker.publish(OutboundMessage("q", b"p", "low"))
    client = redis.Redis.from_url(redis_url)
    client.xadd(f"{redis_prefix}:{{q}}:s3", {"m": "high", "p": b"p"})

    async def take() -> list[str]:
        got = await broker.fetch(["q"], 2, 1)
        await broker.close_async()
        return [d.message_id for d in got]

    assert asyncio.run(take()) == ["high", "low"]
    client.close()
    broker.close()


def _a_command_waits(admin: redis.Redis) -> bool:
    """Redis holds a client's command unanswered (a paused client shows as blocked)."""
    return any("b" in client["flags"] for client in admin.client_list())


def test_a_settle_whose_sending_is_cancelled_fails_instead_of_waiting_forever(
    private_redis: PrivateRedis,
) -> None:
    """A worker awaits each settle before it lets go of the message (and a warm stop
    waits for that): when the sending of a batch ends early, each caller hears so, and
    the next settle is sent as usual."""
    broker = make_broker(private_redis.url, "cancel")
    broker.publish_many([OutboundMessage("q", b"p", f"m-{n}") for n in range(2)])
    admin = redis.Redis.from_url(private_redis.url)

    async def cancel_mid_flight() -> tuple[BaseException | None, bool]:
        first, second = await broker.fetch(["q"], 2, 1)
        admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")  # the ack stays out
        acking = asyncio.ensure_future(first.ack())
        # Until Redis holds the ack unanswered: the sender has written it.
        while not await asyncio.to_thread(_a_command_waits, admin):
            pass
        batch = broker._settles[asyncio.get_running_loop()]
        assert batch.task is not None and not batch.waiting
        # Stopped as the worker stops its tasks: a single cancel can be lost on Python
        # 3.11 when it lands as redis-py's guarded write completes (see cancel_and_wait).
        await cancel_and_wait(batch.task)
        error = None
        try:
            await asyncio.wait_for(acking, 5)
        except BrokerError as exc:
            error = exc
        admin.execute_command("CLIENT", "UNPAUSE")
        acked = await asyncio.wait_for(second.ack(), 5)
        await broker.close_async()
        return error, acked

    error, acked = asyncio.run(cancel_mid_flight())
    assert error is not None and "not sent" in str(error)
    assert acked  # the next settle found the sender free
    admin.close()
    broker.close()
