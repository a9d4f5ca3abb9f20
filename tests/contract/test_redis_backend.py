"""The result-backend contract against real Redis, and what only the Redis engine promises:
TTLs on every key, push-based waits sharing one subscriber connection, clean close, and
connection errors that name the URL without its password."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from celeriac import states
from celeriac.app.connections import create_backend
from celeriac.exceptions import BackendConnectionError, ImproperlyConfigured, TimeoutError
from celeriac.results.base import ResultBackend
from celeriac.results.celery_records import CELERY_RECORDS
from celeriac.results.redis import RedisBackend
from celeriac.testing.contracts import BackendFactory, ResultBackendContract

BackendMaker = Callable[..., RedisBackend]


@pytest.fixture
def make_redis(redis_url: str, redis_prefix: str) -> Iterator[BackendMaker]:
    """Builds Redis backends under the test's key prefix; closes every one at teardown."""
    made: list[RedisBackend] = []

    def make(**options: Any) -> RedisBackend:
        options.setdefault("key_prefix", redis_prefix)
        backend = RedisBackend(redis_url, **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


class TestRedisBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_redis: BackendMaker) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return make_redis(expires=expires)

        return make


class TestRedisCeleryRecords(ResultBackendContract):
    """Celery's layout (``wire_format = "celery"``): plain values, announced at every write."""

    @pytest.fixture
    def make_backend(self, make_redis: BackendMaker) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return make_redis(expires=expires, record_format=CELERY_RECORDS)

        return make


def _id() -> str:
    return f"redis-{uuid.uuid4().hex}"


def _listener_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("celeriac-results-")]


def checks_reaching(backend: RedisBackend, count: int) -> threading.Event:
    """An event set once ``backend`` has looked for ready records ``count`` times.

    A wait looks once before subscribing and once when its subscription is confirmed, so
    ``2 * n`` looks means ``n`` waiters are subscribed and blocked: safe to store now.
    """
    reached, calls, look = threading.Event(), itertools.count(1), backend._get_ready

    def counting(key: str) -> bytes | None:
        found = look(key)
        if next(calls) >= count:
            reached.set()
        return found

    backend._get_ready = counting
    return reached


def wait_in_thread(backend: RedisBackend, task_id: str, timeout: float | None) -> Any:
    """Start ``wait_for`` in a thread; the returned getter joins it (bounded) for the meta."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["meta"] = backend.wait_for(task_id, timeout=timeout)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()

    def result() -> Any:
        thread.join(10)
        assert not thread.is_alive(), f"the wait on {task_id} never returned"
        if "error" in box:
            raise box["error"]
        return box["meta"]

    return result


def test_every_key_gets_the_expiry_in_the_same_write(
    make_redis: BackendMaker, raw: redis.Redis, redis_prefix: str
) -> None:
    backend, task_id = make_redis(expires=120), _id()
    backend.mark_as_done(task_id, 1)
    backend.save_group(task_id, ["a"])
    backend.chord_part_done(task_id, "a", 1)
    result = f"{redis_prefix}:result:"
    chord = f"{result}chord:{task_id}"
    for key in (f"{result}task:{task_id}", f"{result}group:{task_id}", chord, f"{{{chord}}}:owner"):
        ttl = raw.pttl(key)  # (the owner's braces put it in the chord's cluster slot)
        assert 115_000 < ttl <= 120_000, (key, ttl)


def test_expires_none_stores_without_ttl(
    make_redis: BackendMaker, raw: redis.Redis, redis_prefix: str
) -> None:
    backend, task_id = make_redis(expires=None), _id()
    backend.mark_as_done(task_id, 1)
    assert raw.pttl(f"{redis_prefix}:result:task:{task_id}") == -1


def test_three_threads_waiting_on_same_and_different_ids_all_wake_on_one_connection(
    make_redis: BackendMaker, raw: redis.Redis
) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    backend = make_redis(transport_options={"client_name": name})
    shared, other = _id(), _id()
    subscribed = checks_reaching(backend, 6)
    waits = [wait_in_thread(backend, task_id, 10) for task_id in (shared, shared, other)]
    assert subscribed.wait(5), "the waiters did not subscribe"
    subscribers = [c for c in raw.client_list() if c["name"] == name and int(c["sub"]) > 0]
    assert [int(c["sub"]) for c in subscribers] == [2], "one connection, one channel per id"

    backend.mark_as_done(shared, "s")
    backend.mark_as_done(other, "o")
    assert [wait()["result"] for wait in waits] == ["s", "s", "o"]


def test_wait_without_timeout_returns_when_another_thread_stores(
    make_redis: BackendMaker,
) -> None:
    backend, task_id = make_redis(), _id()
    subscribed = checks_reaching(backend, 2)
    wait = wait_in_thread(backend, task_id, None)
    assert subscribed.wait(5)
    backend.mark_as_done(task_id, "late")
    assert wait()["result"] == "late"


def test_progress_does_not_end_a_wait_and_large_results_arrive_by_get(
    make_redis: BackendMaker,
) -> None:
    backend, task_id = make_redis(), _id()
    subscribed = checks_reaching(backend, 2)
    wait = wait_in_thread(backend, task_id, 10)
    assert subscribed.wait(5)
    backend.store_result(task_id, {"done": 1}, "PROGRESS")
    big = "x" * 200_000  # over the inline limit: the message is empty, the waiter GETs
    backend.mark_as_done(task_id, big)
    meta = wait()
    assert (meta["status"], meta["result"]) == (states.SUCCESS, big)


def test_timeout_is_honoured_precisely(make_redis: BackendMaker) -> None:
    backend = make_redis()
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        backend.wait_for(_id(), timeout=0.2)
    assert 0.2 <= time.monotonic() - started < 0.4


def test_waiters_resubscribe_when_the_subscriber_connection_is_killed(
    make_redis: BackendMaker, raw: redis.Redis
) -> None:
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    backend, task_id = make_redis(transport_options={"client_name": name}), _id()
    subscribed = checks_reaching(backend, 2)
    wait = wait_in_thread(backend, task_id, 10)
    assert subscribed.wait(5)
    resubscribed = checks_reaching(backend, 1)  # the next look is after re-subscribing

    (listener,) = [c for c in raw.client_list() if c["name"] == name and int(c["sub"]) > 0]
    raw.client_kill_filter(_id=listener["id"])
    assert resubscribed.wait(5), "the waiter did not subscribe again"
    backend.mark_as_done(task_id, "after the outage")
    assert wait()["result"] == "after the outage"


def test_close_stops_the_listener_thread(make_redis: BackendMaker) -> None:
    before = set(_listener_threads())
    backend, task_id = make_redis(), _id()
    with pytest.raises(TimeoutError):
        backend.wait_for(task_id, timeout=0.05)
    assert len(set(_listener_threads()) - before) == 1
    backend.close()
    assert set(_listener_threads()) - before == set()
    # A closed backend reopens on use, and close() can be called again.
    backend.mark_as_done(task_id, 1)
    assert backend.wait_for(task_id, timeout=1)["result"] == 1
    backend.close()
    backend.close()
    assert set(_listener_threads()) - before == set()


def test_close_wakes_a_waiter_with_a_clear_error(make_redis: BackendMaker) -> None:
    backend, task_id = make_redis(), _id()
    subscribed = checks_reaching(backend, 2)
    wait = wait_in_thread(backend, task_id, None)
    assert subscribed.wait(5)
    backend.close()
    with pytest.raises(BackendConnectionError, match="was closed while waiting"):
        wait()


def test_unreachable_redis_names_the_url_and_the_fix_but_not_the_password() -> None:
    url = "redis://:s3cret-pw@127.0.0.1:1/0"
    backend = RedisBackend(url)
    try:
        for call in (
            lambda: backend.get_task_meta("x"),
            lambda: backend.mark_as_done("x", 1),
            lambda: backend.wait_for("x", timeout=1),
            lambda: backend.chord_part_done("x", "a", 2),
        ):
            with pytest.raises(BackendConnectionError) as caught:
                call()
            message = str(caught.value)
            assert "redis://:**@127.0.0.1:1/0" in message and "s3cret" not in message
            assert "Check that Redis is running" in message
            assert isinstance(caught.value, ConnectionError)
    finally:
        backend.close()
    assert "s3cret" not in repr(backend)


@pytest.mark.parametrize(
    "url",
    ["redis://h:6379/1", "rediss://h:6380/0", "unix:///tmp/redis.sock?db=2", "sentinel://h:26379"],
)
def test_every_redis_scheme_builds_a_redis_backend_without_connecting(url: str) -> None:
    backend = create_backend(url, 60, "json", ["json"], {"master_name": "m", "key_prefix": "kp"})
    try:
        assert isinstance(backend, RedisBackend) and backend.key_prefix == "kp"
        assert backend.expires == 60
    finally:
        backend.close()


def test_decoded_responses_are_refused_with_the_fix() -> None:
    with pytest.raises(ImproperlyConfigured, match="remove decode_responses"):
        RedisBackend("redis://127.0.0.1:1/0?decode_responses=True")
