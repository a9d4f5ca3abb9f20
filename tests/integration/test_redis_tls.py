"""rediss://: the broker and the result backend over TLS, against a private TLS redis-server."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.results.redis import RedisBackend
from tests.conftest import service_missing
from tests.integration.conftest import free_port, system_redis_server


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    server, openssl = system_redis_server(), shutil.which("openssl")
    if server is None or openssl is None:
        service_missing("redis-server and openssl", "one of them is not on PATH")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [str(openssl), "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    process = subprocess.Popen(
        [str(server), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert),
         "--tls-auth-clients", "no", "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_until_ready(port, cert)
        yield port, cert
    finally:  # also when start-up failed: never leave a server behind
        process.kill()
        process.wait(timeout=10)


def _wait_until_ready(port: int, cert: Path) -> None:
    probe = redis.Redis(
        host="127.0.0.1", port=port, ssl=True, ssl_ca_certs=str(cert), socket_connect_timeout=0.2
    )
    deadline = time.monotonic() + 10
    while True:  # wait for the server to accept TLS connections (process start-up)
        try:
            probe.ping()
            break
        except redis.ConnectionError:
            assert time.monotonic() < deadline, "TLS redis-server did not start"
            time.sleep(0.05)
    probe.close()


def test_broker_and_backend_over_tls(tls_redis: tuple[int, Path]) -> None:
    port, cert = tls_redis
    url = f"rediss://127.0.0.1:{port}/0"
    options = {"ssl_ca_certs": str(cert), "key_prefix": "tls"}
    broker = RedisBroker(url, transport_options=options)
    backend = RedisBackend(url, key_prefix="tls", transport_options=options)
    broker.publish(OutboundMessage("q", b"secret payload", "m-tls"))

    async def take() -> list[bytes]:
        got = await broker.fetch(["q"], 1, 5)
        for delivery in got:
            await delivery.ack()
        await broker.close_async()
        return [d.payload for d in got]

    assert asyncio.run(take()) == [b"secret payload"]
    backend.mark_as_done("t-1", {"ok": True})
    assert backend.wait_for("t-1", timeout=5)["result"] == {"ok": True}
    broker.close()
    backend.close()


def test_broker_use_ssl_supplies_the_tls_options(tls_redis: tuple[int, Path]) -> None:
    from celeriac import Celery
    from celeriac.testing import drain

    port, cert = tls_redis
    app = Celery(
        "tls", broker=f"rediss://127.0.0.1:{port}/0", backend="cache+memory://",
        broker_use_ssl={"ssl_ca_certs": str(cert)},
        broker_transport_options={"key_prefix": "tls-app"},
    )  # fmt: skip

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(1, 2)
    assert drain(app) == 1 and result.get(timeout=1) == 3
    app.close()


def test_tls_with_an_untrusted_certificate_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    broker = RedisBroker(f"rediss://127.0.0.1:{port}/0", transport_options={"key_prefix": "x"})
    with pytest.raises(ConnectionError, match="certificate"):
        broker.publish(OutboundMessage("q", b"p", "m"))
    broker.close()
