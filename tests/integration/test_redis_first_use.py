"""Many threads using a Redis broker or result store for the first time, at once (a web
app's request threads right after start, a threads pool's first tasks): they share one
client, and every call succeeds. Real Redis.

A client made by each thread and then dropped closes its connection pool when it is
collected, under the call that still uses one of its connections: that call failed with
"Connection closed by server".
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac._redis import RedisTarget
from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.results.redis import RedisBackend

THREADS = 16


@pytest.fixture
def clients_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[RedisTarget]]:
    """Each Redis client made meanwhile. Making one takes a moment longer than usual, so
    that every thread reaches its first call while the first client is being made."""
    made: list[RedisTarget] = []
    real = RedisTarget.sync_client

    def sync_client(target: RedisTarget) -> Any:
        made.append(target)
        time.sleep(0.05)  # widens the window the threads race in; no one waits on it
        return real(target)

    monkeypatch.setattr(RedisTarget, "sync_client", sync_client)
    yield made


def all_at_once(call: Callable[[int], object]) -> list[BaseException]:
    """``call(n)`` in ``THREADS`` threads released together; the errors they raised."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        start.wait()
        try:
            call(n)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return errors


def test_first_sends_from_many_threads_share_one_client(
    redis_url: str, redis_prefix: str, clients_made: list[RedisTarget]
) -> None:
    broker = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})
    try:
        errors = all_at_once(lambda n: broker.publish(OutboundMessage("q", b"p", f"m-{n}")))
        assert errors == []
        assert len(clients_made) == 1
        assert broker.queue_length("q") == THREADS
    finally:
        broker.close()


def test_first_results_from_many_threads_share_one_client(
    redis_url: str, redis_prefix: str, clients_made: list[RedisTarget]
) -> None:
    backend = RedisBackend(redis_url, key_prefix=redis_prefix)
    ids = [str(uuid.uuid4()) for _ in range(THREADS)]
    try:
        errors = all_at_once(lambda n: backend.store_result(ids[n], n, states.SUCCESS))
        assert errors == []
        assert len(clients_made) == 1
        assert [backend.get_task_meta(task_id)["result"] for task_id in ids] == list(range(THREADS))
    finally:
        backend.close()
