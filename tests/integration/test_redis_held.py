"""A producer's publish on Redis goes out on a connection the broker holds: it survives a
killed connection and a restart of Redis, is not shared with a forked child, is shared
safely by threads, leaves room in a small pool, and keeps a connection that got an error
reply in use. The worker's pre-packed script calls leave room in a small pool too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator

import pytest
import redis

from celeriac._redis_held import MAX_HELD, HeldConnections
from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis.packed import PackedCalls
from tests.integration.conftest import PrivateRedis


@contextlib.contextmanager
def broker_and_client(url: str, prefix: str) -> Iterator[tuple[RedisBroker, redis.Redis]]:
    """A broker under ``prefix`` and a plain client to read what it stored; both closed."""
    broker = RedisBroker(url, transport_options={"key_prefix": prefix})
    raw = redis.Redis.from_url(url)
    try:
        yield broker, raw
    finally:
        raw.close()
        broker.close()


def stored_ids(raw: redis.Redis, broker: RedisBroker, queue: str = "q") -> list[str]:
    entries = raw.xrange(broker.keys(queue).stream(0))
    return [fields[b"m"].decode() for _, fields in entries]


def test_publishes_go_on_after_the_connection_is_killed_and_after_a_restart(
    private_redis: PrivateRedis,
) -> None:
    with broker_and_client(private_redis.url, "held") as (broker, raw):
        broker.publish(OutboundMessage("q", b"p", "m-0"))
        raw.client_kill_filter(_type="normal", skipme=True)  # the held connection too
        broker.publish(OutboundMessage("q", b"p", "m-1"))
        private_redis.restart()  # (AOF, fsync always: what was stored is kept)
        broker.publish(OutboundMessage("q", b"p", "m-2"))
        assert stored_ids(raw, broker) == ["m-0", "m-1", "m-2"]


def test_a_forked_child_publishes_on_connections_of_its_own(
    redis_url: str, redis_prefix: str
) -> None:
    with broker_and_client(redis_url, redis_prefix) as (broker, raw):
        broker.publish(OutboundMessage("q", b"p", "parent-0"))  # holds a connection now
        pid = os.fork()
        if pid == 0:  # the child: on the parent's socket, the replies would cross
            code = 1
            try:
                for n in range(50):
                    broker.publish(OutboundMessage("q", b"p", f"child-{n}"))
                code = 0
            finally:
                os._exit(code)
        for n in range(1, 51):
            broker.publish(OutboundMessage("q", b"p", f"parent-{n}"))
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        ids = stored_ids(raw, broker)
        assert sorted(ids) == sorted([f"parent-{n}" for n in range(51)] +
                                     [f"child-{n}" for n in range(50)])  # fmt: skip


def test_threads_sending_at_once_share_the_held_connections_and_the_pool(
    redis_url: str, redis_prefix: str
) -> None:
    start, errors = threading.Barrier(12), []

    def send(thread: int) -> None:
        start.wait()
        try:
            for n in range(100):
                broker.publish(OutboundMessage("q", b"p", f"t{thread}-{n}"))
        except Exception as exc:  # collected: the assertion below names it
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(12)]
    with broker_and_client(redis_url, redis_prefix) as (broker, raw):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        ids = stored_ids(raw, broker)
        assert sorted(ids) == sorted(f"t{t}-{n}" for t in range(12) for n in range(100))
        for t in range(12):  # each thread's own messages in the order it sent them
            assert [i for i in ids if i.startswith(f"t{t}-")] == [f"t{t}-{n}" for n in range(100)]


def test_an_error_reply_raises_and_leaves_the_connection_held(
    redis_url: str, redis_prefix: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    held = HeldConnections(client)
    key = f"{redis_prefix}:text"
    try:
        client.set(key, "not a number")
        with pytest.raises(redis.ResponseError, match="not an integer"):
            held.execute("INCR", key)
        assert held.execute("PING") == b"PONG"  # (the reply as read: no callbacks)
        assert held._held == 1 <= MAX_HELD
    finally:
        client.delete(key)
        client.close()


def test_a_small_pool_keeps_room_for_the_ordinary_path(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url, max_connections=3)
    held = HeldConnections(client)
    try:
        started, replies = threading.Barrier(3), []

        def ping() -> None:
            started.wait()
            replies.append(held.execute("PING"))

        threads = [threading.Thread(target=ping) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert held._held <= 1  # half of 3: two connections stay the pool's
        assert client.ping() is True  # the pool still has a connection to give
    finally:
        client.close()


def test_the_workers_packed_calls_keep_room_in_a_small_pool(redis_url: str) -> None:
    async def calls_at_once() -> tuple[list[object], int, bool]:
        client = redis.asyncio.Redis.from_url(redis_url, max_connections=3)
        script = client.register_script("return 7")
        calls = PackedCalls(client)
        try:
            replies = await asyncio.gather(*(calls.evalsha(script, [], []) for _ in range(3)))
            return list(replies), calls._held, await client.ping()
        finally:
            await client.aclose()

    replies, held, pinged = asyncio.run(calls_at_once())
    assert replies == [7, 7, 7]
    assert held <= 1 and pinged is True  # half of 3: the pool still had one to give


def test_a_script_redis_lost_is_loaded_on_the_held_connection(redis_url: str) -> None:
    # A pool of 2: the packed calls hold one, a blocked read takes the other. A script
    # Redis does not know (new here, or flushed by a restart) must be loaded and called on
    # the held connection: there is no other to take.
    key = f"celeriac-test:held-noscript:{os.getpid()}"

    async def call_with_the_pool_busy() -> tuple[object, object]:
        client = redis.asyncio.Redis.from_url(redis_url, max_connections=2)
        calls = PackedCalls(client)
        try:
            assert await calls.evalsha(client.register_script("return 1"), [], []) == 1
            blocked = asyncio.ensure_future(client.blpop([key], timeout=10))
            while len(client.connection_pool._in_use_connections) < 2:
                await asyncio.sleep(0.01)  # the blocked read has taken the pool's other one
            unknown = client.register_script(f"return '{os.urandom(8).hex()}'")
            reply = await calls.evalsha(unknown, [], [])
            pusher = redis.asyncio.Redis.from_url(redis_url)
            try:
                await pusher.rpush(key, "done")
            finally:
                await pusher.aclose()
            return reply, await blocked
        finally:
            await client.aclose()

    reply, popped = asyncio.run(call_with_the_pool_busy())
    assert isinstance(reply, bytes) and len(reply) == 16
    assert popped == (key.encode(), b"done")
