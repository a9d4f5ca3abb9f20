"""``celeriac.contrib.rdb``: a task body stops at ``set_trace()`` and a client debugs it
over TCP (a real socket from the test): it reads a local, then ``c`` lets the task end."""

from __future__ import annotations

import re
import socket
import threading
import time
from typing import Any

import pytest

from celeriac import Celery
from celeriac.contrib import rdb
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import start_worker


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    """The debugger's socket, once it listens (polled: it starts when the task gets there)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=timeout)
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, f"nothing listened on {port}"
            time.sleep(0.02)


def announced_port(capsys: pytest.CaptureFixture[str], timeout: float = 10.0) -> int:
    """The port the debugger says it listens on. Polled: it says so on stdout from the
    body's thread, as it starts to wait for a client, and captured output has nothing
    to wait on."""
    deadline = time.monotonic() + timeout
    said = ""
    while (found := re.search(r"Ready to connect: telnet \S+ (\d+)", said)) is None:
        assert time.monotonic() < deadline, f"the debugger never said where it is: {said!r}"
        time.sleep(0.02)
        said += capsys.readouterr().out
    return int(found.group(1))


def read_until(client: socket.socket, marker: bytes) -> bytes:
    seen = b""
    while marker not in seen:
        chunk = client.recv(4096)
        assert chunk, f"closed before {marker!r}: {seen!r}"
        seen += chunk
    return seen


def test_a_client_debugs_a_task_in_a_worker_then_continues(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    monkeypatch.setenv("CELERIAC_RDB_PORT", str(port))
    app = Celery("rdb", broker="memory://", backend="cache+memory://", set_as_current=False)

    @app.task
    def double(x: int) -> int:
        secret = x * 2
        rdb.set_trace()
        return secret

    with start_worker(app, pool="threads"):
        result = double.delay(21)
        with connect(port) as client:
            read_until(client, b"(Pdb) ")
            client.sendall(b"p secret\n")
            assert b"42" in read_until(client, b"(Pdb) ")
            client.sendall(b"c\n")
        assert result.get(timeout=10) == 42


def test_celerys_variables_a_busy_port_and_a_dropped_client(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CELERIAC_RDB_PORT", raising=False)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    port = busy.getsockname()[1]
    monkeypatch.setenv("CELERY_RDB_PORT", str(port))  # Celery's name, and a port in use
    assert rdb.rdb_address() == ("127.0.0.1", port)
    done: dict[str, Any] = {}

    def body() -> None:
        value = "still here"
        rdb.set_trace()
        done["value"] = value

    runner = threading.Thread(target=body)
    runner.start()
    try:
        # A later port of the search: the first is taken (and so may be the next one,
        # by any other program on the machine).
        chosen = announced_port(capsys)
        assert port < chosen < port + 100
        with connect(chosen) as client:
            read_until(client, b"(Pdb) ")
        runner.join(10)  # the client left: the body runs on
        assert done == {"value": "still here"}
    finally:
        busy.close()


def test_a_port_that_is_not_a_number_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERIAC_RDB_PORT", "sixty")
    with pytest.raises(ImproperlyConfigured, match="must be a port number, not 'sixty'"):
        rdb.rdb_address()
