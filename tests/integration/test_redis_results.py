"""An app whose results live in Redis: tasks run with ``drain`` on the in-process broker,
callers read, wait for and forget results through the Redis result backend."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from celeriac import Celery, states
from celeriac.results.redis import RedisBackend
from celeriac.testing import drain


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    app = Celery(
        "t",
        broker="memory://",
        backend=redis_url,
        result_backend_transport_options={"key_prefix": redis_prefix},
    )
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


def test_the_app_builds_a_redis_backend_with_the_configured_prefix(
    app: Celery, redis_prefix: str
) -> None:
    assert isinstance(app.backend, RedisBackend)
    assert app.backend.key_prefix == redis_prefix


def test_result_is_stored_in_redis_and_read_with_get(
    app: Celery, raw: redis.Redis, redis_prefix: str
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    assert result.state == states.PENDING
    assert drain(app) == 1
    assert result.get(timeout=5) == 5
    assert result.successful() and result.date_done is not None
    assert raw.exists(f"{redis_prefix}:result:task:{result.id}") == 1


def test_get_waits_for_a_task_finished_by_another_thread(app: Celery) -> None:
    @app.task
    def hello() -> str:
        return "hi"

    result = hello.delay()
    worker = threading.Thread(target=drain, args=(app,))
    worker.start()
    try:
        assert result.get(timeout=5) == "hi"
    finally:
        worker.join()


def test_failure_propagates_through_redis(app: Celery) -> None:
    @app.task
    def fail() -> None:
        raise ValueError("bad input 42")

    result = fail.delay()
    drain(app)
    with pytest.raises(ValueError, match="bad input 42"):
        result.get(timeout=5)
    assert result.failed() and "ValueError: bad input 42" in (result.traceback or "")


def test_progress_is_visible_and_does_not_end_get(app: Celery) -> None:
    progressed, release = threading.Event(), threading.Event()

    @app.task(bind=True)
    def crunch(self: Any) -> str:
        self.update_state(state="PROGRESS", meta={"done": 3})
        progressed.set()
        release.wait(5)
        return "crunched"

    result = crunch.delay()
    worker = threading.Thread(target=drain, args=(app,))
    worker.start()
    try:
        assert progressed.wait(5)
        assert (result.state, result.info) == ("PROGRESS", {"done": 3})
        release.set()
        assert result.get(timeout=5) == "crunched"
    finally:
        release.set()
        worker.join()


def test_forget_deletes_the_result(app: Celery, raw: redis.Redis, redis_prefix: str) -> None:
    @app.task
    def one() -> int:
        return 1

    result = one.delay()
    drain(app)
    assert result.get(timeout=5) == 1
    result.forget()
    assert result.state == states.PENDING
    assert raw.exists(f"{redis_prefix}:result:task:{result.id}") == 0


def test_ignore_result_stores_nothing(app: Celery, raw: redis.Redis, redis_prefix: str) -> None:
    @app.task(ignore_result=True)
    def fire_and_forget() -> int:
        return 1

    result = fire_and_forget.delay()
    assert drain(app) == 1
    assert result.state == states.PENDING
    assert list(raw.scan_iter(match=f"{redis_prefix}:*")) == []
