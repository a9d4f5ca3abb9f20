"""For tests of the memcached result store: a memcached of the test's own on a spare port,
stopped afterwards. Without the ``memcached`` binary the tests skip locally and fail in CI."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.conftest import service_missing


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"version\r\n")
            return sock.recv(64).startswith(b"VERSION")
    except OSError:
        return False


@contextmanager
def memcached_server(*extra: str) -> Iterator[str]:
    """Start ``memcached`` on a spare port (``extra``: more of its options); yield
    ``'127.0.0.1:<port>'`` once it answers."""
    pytest.importorskip("pymemcache", reason="the memcached store needs celeriac[memcached]")
    binary = shutil.which("memcached")
    if binary is None:
        service_missing(
            "memcached", "the memcached binary is not on PATH (apt-get install memcached)"
        )
    port = _free_port()
    process = subprocess.Popen(
        [str(binary), "-p", str(port), "-U", "0", "-l", "127.0.0.1", "-u", "nobody", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not _answers(port):  # the server starts listening a moment after the process
            if process.poll() is not None:
                error = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"memcached did not start: {error}")
            assert time.monotonic() < deadline, "memcached did not answer within 10 s"
            time.sleep(0.02)
        yield f"127.0.0.1:{port}"
    finally:  # also when start-up failed: never leave a server behind
        process.kill()
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
