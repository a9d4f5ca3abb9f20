"""A result wait survives a network that drops silently: the listener's keepalive PING
notices the dead link, and the wait re-subscribes on a fresh connection."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import redis

from celeriac import states
from celeriac.results.redis import RedisBackend
from tests.integration.conftest import free_port


class BlackholeProxy:
    """Forwards TCP to Redis; ``blackhole_newest()`` silently drops the traffic of the
    newest link (no reset, as when a network path dies), while other links work."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.port = free_port()
        self.listener = socket.create_server(("127.0.0.1", self.port))
        self.links: list[tuple[socket.socket, socket.socket, threading.Event]] = []
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def _accept(self) -> None:
        self.listener.settimeout(0.1)
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            upstream = socket.create_connection(self.target)
            dropped = threading.Event()
            self.links.append((client, upstream, dropped))
            pump = threading.Thread(target=self._pump, args=(client, upstream, dropped))
            self.threads.append(pump)
            pump.start()

    def _pump(self, a: socket.socket, b: socket.socket, dropped: threading.Event) -> None:
        peers = {a: b, b: a}
        while not self.stopped.is_set():
            ready, _, _ = select.select(list(peers), [], [], 0.1)
            for sock in ready:
                try:
                    data = sock.recv(65536)
                    if data and not dropped.is_set():
                        peers[sock].sendall(data)
                except OSError:
                    data = b""
                if not data:
                    return

    def blackhole_newest(self) -> None:
        self.links[-1][2].set()

    def close(self) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(5)
        self.listener.close()
        for a, b, _ in self.links:
            a.close()
            b.close()


@pytest.fixture
def proxy(redis_url: str) -> Iterator[BlackholeProxy]:
    parsed = urlsplit(redis_url)
    server = BlackholeProxy((parsed.hostname or "127.0.0.1", parsed.port or 6379))
    yield server
    server.close()


def test_a_wait_outlives_a_silently_dropped_connection(
    proxy: BlackholeProxy, redis_url: str, redis_prefix: str
) -> None:
    db = urlsplit(redis_url).path.strip("/") or "0"
    backend = RedisBackend(
        f"redis://127.0.0.1:{proxy.port}/{db}",
        key_prefix=redis_prefix,
        transport_options={"listener_keepalive": 0.3},
    )
    direct = RedisBackend(redis_url, key_prefix=redis_prefix)
    outcome: dict[str, object] = {}
    subscribed = threading.Event()
    original_join = backend._listener.join

    def join_and_signal(channel: bytes) -> object:
        waiter = original_join(channel)
        subscribed.set()
        return waiter

    backend._listener.join = join_and_signal

    def wait() -> None:
        started = time.monotonic()
        outcome["meta"] = backend.wait_for("task-1", timeout=10)
        outcome["waited"] = time.monotonic() - started

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert subscribed.wait(5)
    # The newest link is the listener's subscription (opened after the first read); it now
    # swallows everything, silently.
    proxy.blackhole_newest()
    direct.mark_as_done("task-1", 42)  # its notification is lost in the dead link
    waiter.join(15)
    assert outcome["meta"]["status"] == states.SUCCESS
    assert outcome["meta"]["result"] == 42
    assert outcome["waited"] < 5  # noticed by the keepalive, not by the 10 s timeout
    backend.close()
    direct.close()
    redis.Redis.from_url(redis_url).close()
