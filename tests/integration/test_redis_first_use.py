"""Many threads using an app, its Redis broker or its result store for the first time, at
once (a web app's request threads right after start, a threads pool's first tasks): they
share one broker, one result store and one client each, and every call succeeds. Real
Redis.

A client made by each thread and then dropped closes its connection pool when it is
collected, under the call that still uses one of its connections: that call failed with
"Connection closed by server". A broker made by each thread (on RabbitMQ: a connection
and an I/O thread each) was left behind.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

import celeriac.app.base
import celeriac.app.engine_options
from celeriac import Celeriac, states
from celeriac._redis import RedisTarget
from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.results.redis import RedisBackend

THREADS = 16


def slow_to_make(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> list[object]:
    """Each object ``module.<name>`` makes meanwhile, made a moment slower so that every
    thread reaches its first call while the first one is being made."""
    made: list[object] = []
    real = getattr(module, name)

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.05)  # widens the window the threads race in; no one waits on it
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(module, name, slow)
    return made


@pytest.fixture
def clients_made(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Each Redis client made meanwhile."""
    return slow_to_make(monkeypatch, RedisTarget, "sync_client")


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
    redis_url: str, redis_prefix: str, clients_made: list[object]
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
    redis_url: str, redis_prefix: str, clients_made: list[object]
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


def test_an_app_used_from_many_threads_at_once_makes_one_broker_and_one_store(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Celeriac(
        "first-use", broker=redis_url, result_backend=redis_url,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    brokers = slow_to_make(monkeypatch, celeriac.app.base, "broker_for_url")
    stores = slow_to_make(monkeypatch, celeriac.app.engine_options, "create_backend")
    seen: list[tuple[object, object]] = []
    try:
        errors = all_at_once(lambda n: seen.append((app.broker, app.backend)))
        assert errors == []
        assert len(brokers) == 1 and len(stores) == 1
        assert set(seen) == {(brokers[0], stores[0])}
    finally:
        app.close()
