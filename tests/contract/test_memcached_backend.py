"""The result-backend contract against a real memcached of the tests' own, and what only the
memcached store promises: expiries as memcached reads them, several servers, any task id
as a key, the client options, and connection errors naming the servers."""

from __future__ import annotations

import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import BackendConnectionError, BackendError, ImproperlyConfigured
from celeriac.results.base import ResultBackend
from celeriac.results.memory import MemoryBackend
from celeriac.testing import drain
from celeriac.testing.contracts import BackendFactory, ResultBackendContract
from tests.memcached_server import memcached_server

pymemcache = pytest.importorskip("pymemcache", reason="needs celeriac[memcached]")
from celeriac.results.memcached import (  # noqa: E402  (after the skip without pymemcache)
    KEY_PREFIX,
    MAX_RELATIVE_EXPIRES,
    MemcachedBackend,
    memcached_expiry,
)

Maker = Callable[..., MemcachedBackend]


@pytest.fixture(scope="module")
def memcached() -> Iterator[str]:
    with memcached_server() as address:
        yield address


@pytest.fixture
def make_memcached(memcached: str) -> Iterator[Maker]:
    """Builds stores on the tests' memcached; closes every one at teardown."""
    made: list[MemcachedBackend] = []

    def make(servers: list[str] | None = None, **options: Any) -> MemcachedBackend:
        backend = MemcachedBackend(servers or [memcached], **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


class TestMemcachedBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_memcached: Maker) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return make_memcached(expires=expires)

        return make


def _id() -> str:
    return f"memcached-{uuid.uuid4().hex}"


def _raw(address: str) -> Any:
    """A plain pymemcache client on one server, to look at what the store wrote."""
    return pymemcache.Client(address, connect_timeout=2, timeout=2)


# -- what only the memcached store promises -----------------------------------------------------


def test_expiries_are_given_as_memcached_reads_them() -> None:
    assert memcached_expiry(None) == 0 and memcached_expiry(0) == 0  # never expires
    assert memcached_expiry(0.2) == 1, "under a second must not become 0 (never)"
    assert memcached_expiry(3600) == 3600
    later = memcached_expiry(MAX_RELATIVE_EXPIRES + 60)  # longer: a Unix time
    assert abs(later - (time.time() + MAX_RELATIVE_EXPIRES + 60)) < 5


def test_a_result_kept_longer_than_30_days_is_stored_not_dropped(make_memcached: Maker) -> None:
    backend, task_id = make_memcached(expires=40 * 86400), _id()
    backend.mark_as_done(task_id, 1)
    assert backend.get_task_meta(task_id)["status"] == states.SUCCESS


def _ttl(address: str, key: str) -> int:
    """The seconds memcached will keep ``key`` (-1: for ever), by its meta command."""
    host, _, port = address.partition(":")
    with socket.create_connection((host, int(port)), timeout=2) as sock:
        sock.sendall(f"mg {key} t\r\n".encode())
        answer = sock.recv(256).decode().split()
    assert answer[0] == "HD", answer
    return int(answer[1].removeprefix("t"))


@pytest.mark.parametrize(("expires", "low", "high"), [(120, 115, 120), (None, -1, -1)])
def test_every_key_gets_the_expiry(
    make_memcached: Maker, memcached: str, expires: float | None, low: int, high: int
) -> None:
    backend, task_id = make_memcached(expires=expires), _id()
    backend.mark_as_done(task_id, 1)
    backend.save_group(task_id, ["a"])
    backend.chord_part_done(task_id, "a", 1)
    for key in ("task:{}", "group:{}", "chord:{}", "chord:{}:member:a", "chord:{}:owner"):
        assert low <= _ttl(memcached, KEY_PREFIX + key.format(task_id)) <= high, key


@pytest.mark.parametrize("task_id", ["an id with spaces", "x" * 400, "ünïcode-id", "tab\tid"])
def test_any_task_id_is_stored_and_read_back(make_memcached: Maker, task_id: str) -> None:
    backend = make_memcached()
    backend.mark_as_done(task_id, [task_id])
    assert backend.get_task_meta(task_id)["result"] == [task_id]
    backend.forget(task_id)
    assert backend.get_task_meta(task_id)["status"] == states.PENDING


def test_results_are_spread_over_several_servers(make_memcached: Maker, memcached: str) -> None:
    with memcached_server() as second:
        backend = make_memcached([memcached, second])
        ids = [_id() for _ in range(40)]
        for number, task_id in enumerate(ids):
            backend.mark_as_done(task_id, number)
        assert [meta["result"] for meta in backend.get_many_meta(ids)] == list(range(40))
        raw = _raw(second)
        try:
            on_second = raw.get_many([(KEY_PREFIX + f"task:{i}").encode() for i in ids])
        finally:
            raw.close()
        assert 0 < len(on_second) < 40, "keys are hashed across both servers"
        backend.close()


def test_client_options_reach_pymemcache(make_memcached: Maker, memcached: str) -> None:
    backend, task_id = make_memcached(options={"key_prefix": b"app1:", "timeout": 2}), _id()
    backend.mark_as_done(task_id, 3)
    raw = _raw(memcached)
    try:
        assert raw.get(f"app1:{KEY_PREFIX}task:{task_id}".encode()) is not None
    finally:
        raw.close()


def test_unknown_client_options_are_refused_with_the_fix(memcached: str) -> None:
    with pytest.raises(
        ImproperlyConfigured, match=r"cache_backend_options were refused.*'no_such'"
    ):
        MemcachedBackend([memcached], options={"no_such": 1})


def test_pylibmc_only_options_warn_that_they_have_no_effect(make_memcached: Maker) -> None:
    with pytest.warns(DeprecationWarning, match=r"'behaviors'\] is a pylibmc option"):
        backend = make_memcached(options={"behaviors": {"tcp_nodelay": True}})
    task_id = _id()
    backend.mark_as_done(task_id, 1)
    assert backend.get_task_meta(task_id)["result"] == 1


def test_retry_options_repeat_a_failed_call(make_memcached: Maker) -> None:
    # A RetryingClient makes retry_attempts tries; each one fails here on a closed port.
    backend = make_memcached(["127.0.0.1:1"], options={"retry_attempts": 3, "connect_timeout": 0.5})
    with pytest.raises(BackendConnectionError):
        backend.get_task_meta(_id())
    assert type(backend._client).__name__ == "RetryingClient"


def test_no_server_is_refused_with_the_fix() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"names no server.*cache\+memcached://"):
        MemcachedBackend(["", ""])


def test_an_unreachable_server_is_named_in_a_connection_error(make_memcached: Maker) -> None:
    backend = make_memcached(["127.0.0.1:1"], options={"connect_timeout": 0.5})
    with pytest.raises(BackendConnectionError, match=r"memcached at 127\.0\.0\.1:1 could not"):
        backend.mark_as_done(_id(), 1)
    assert isinstance(backend, ResultBackend) and "127.0.0.1:1" in repr(backend)


# -- through the app's settings -----------------------------------------------------------------


def _app(**settings: Any) -> Celery:
    return Celery("t", broker="memory://", **settings)


def test_a_delay_get_round_trip_through_the_url(memcached: str) -> None:
    app = _app(backend=f"cache+memcached://{memcached}/", cache_backend_options={"timeout": 3})
    try:

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        result = add.delay(2, 3)
        assert drain(app) == 1
        assert result.get(timeout=5) == 5
        assert isinstance(app.backend, MemcachedBackend) and app.backend.servers == [memcached]
    finally:
        app.close()


@pytest.mark.parametrize("name", ["memcached", "memcache", "pymemcache", "pylibmc"])
def test_celerys_names_and_several_servers_in_the_url(name: str) -> None:
    app = _app(backend=f"cache+{name}://h1:11211;h2:11212/")
    try:
        assert app.backend.servers == ["h1:11211", "h2:11212"]
    finally:
        app.close()


def test_result_backend_cache_takes_the_store_from_cache_backend(memcached: str) -> None:
    app = _app(backend="cache", cache_backend=f"memcached://{memcached}/")
    try:
        app.backend.mark_as_done("t1", 1)
        assert isinstance(app.backend, MemcachedBackend)
        assert app.backend.get_task_meta("t1")["result"] == 1
    finally:
        app.close()
    memory = _app(backend="cache", cache_backend="memory")
    assert isinstance(memory.backend, MemoryBackend)


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"backend": "cache"}, "cache_backend is not set"),
        ({"backend": "cache+redis://h/"}, r"cache result store 'redis' is unknown"),
        ({"backend": "cache", "cache_backend": "memcached:///"}, "names no server"),
        ({"backend": "cache+memcached://h/", "cache_backend_options": {"x": 1}}, "argument 'x'"),
    ],
)
def test_bad_cache_settings_are_refused_with_the_fix(settings: dict[str, Any], match: str) -> None:
    app = _app(**settings)
    with pytest.raises(ImproperlyConfigured, match=match):
        _ = app.backend


def test_result_backend_transport_options_warn_that_they_have_no_effect() -> None:
    app = _app(
        backend="cache+memcached://h:11211/", result_backend_transport_options={"key_prefix": "x"}
    )
    with pytest.warns(UnknownSettingWarning, match=r"\['key_prefix'\] has no effect"):
        assert isinstance(app.backend, MemcachedBackend)


def _total_connections(address: str) -> int:
    raw = _raw(address)
    try:
        return int(raw.stats()[b"total_connections"])
    finally:
        raw.close()


def test_a_forked_child_opens_connections_of_its_own(make_memcached: Maker, memcached: str) -> None:
    # Given a store whose connection the parent has opened
    backend, task_id = make_memcached(), _id()
    backend.mark_as_done(task_id, "parent")
    before = _total_connections(memcached)
    # When a forked child (as a prefork worker's) stores a result
    pid = os.fork()
    if pid == 0:  # the child: store, then leave without running the parent's teardown
        try:
            backend.mark_as_done(f"{task_id}-child", "child")
        finally:
            os._exit(0)
    assert os.waitpid(pid, 0)[1] == 0
    # Then it connected on its own, and the parent's connection still answers
    assert _total_connections(memcached) >= before + 2  # the child's, and this count's own
    assert backend.get_task_meta(f"{task_id}-child")["result"] == "child"
    assert backend.get_task_meta(task_id)["result"] == "parent"


def test_a_result_over_the_item_size_is_refused_with_the_limit(make_memcached: Maker) -> None:
    backend, task_id = make_memcached(), _id()
    with pytest.raises(BackendError, match=r"over memcached's item size \(1 MiB"):
        backend.mark_as_done(task_id, "x" * 2_000_000)
    assert backend.get_task_meta(task_id)["status"] == states.PENDING


def test_every_server_down_is_a_connection_error(make_memcached: Maker) -> None:
    backend = make_memcached(
        ["127.0.0.1:1", "127.0.0.1:2"],
        options={"connect_timeout": 0.5, "retry_timeout": 0},
    )
    causes = []
    for _ in range(20):  # refused, until HashClient has marked both servers dead
        with pytest.raises(BackendConnectionError, match="could not be reached") as caught:
            backend.get_task_meta(_id())
        cause = caught.value.__cause__
        while isinstance(cause, BackendError):  # the read's own error wraps the store's
            cause = cause.__cause__
        causes.append(type(cause).__name__)
    assert causes[0] == "ConnectionRefusedError" and causes[-1] == "MemcacheError"
