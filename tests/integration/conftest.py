"""Fixtures for integration tests: a private redis-server this test may stop and restart."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import service_missing


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_ports(count: int) -> list[int]:
    """``count`` different free ports: held open together while chosen, as ``free_port``
    called twice may hand out the same port again."""
    with contextlib.ExitStack() as held:
        socks = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def system_redis_server() -> str | None:
    """The machine's redis-server, never the 6.2 copy the embedded extra puts in the venv."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
    return shutil.which("redis-server", path=path)


class PrivateRedis:
    """A redis-server of our own (AOF on, fsync always), so tests may kill and restart it."""

    def __init__(self, directory: Path, *extra: str) -> None:
        self.binary = system_redis_server()
        self.port = free_port()
        self.directory = directory
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert self.binary is not None
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--appendonly", "yes", "--appendfsync", "always",
             "--save", "", "--logfile", str(self.directory / "redis.log"), *self.extra],
        )  # fmt: skip
        wait_for_redis_server(self.port, self.stop)

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def wait_for_redis_server(port: int, give_up: Callable[[], None]) -> None:
    """Return once the redis-server starting on ``port`` answers; after 10 s, call
    ``give_up`` (stop it: never leave a half-started server behind) and raise."""
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    deadline = time.monotonic() + 10
    try:
        while True:  # the process's start-up: poll until it accepts connections
            try:
                client.ping()
                return
            except redis.ConnectionError as exc:
                if time.monotonic() > deadline:
                    give_up()
                    raise RuntimeError(f"redis-server did not start on {port}") from exc
                time.sleep(0.05)
    finally:
        client.close()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    if server.binary is None:
        service_missing("redis-server", "the redis-server program is not on PATH")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def short_directory() -> Iterator[Path]:
    """A fresh directory with a short path, removed after: a unix socket's path must fit in
    107 bytes, which pytest's temporary paths (per worker process, per test) can exceed."""
    directory = Path(tempfile.mkdtemp(prefix="celeriac-", dir="/tmp"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def embedded_state() -> Iterator[Path]:
    """The directory embedded servers keep their state (and sockets) in, for one test."""
    with short_directory() as directory:
        yield directory / "state"
