"""Servers that speak only TLS, for the TLS tests: certificates made by ``trustme`` at test
time, a redis-server on a TLS port of its own, and a RabbitMQ node of its own (never the
shared one on 5672) with a TLS listener. Both ask every client for a certificate. Also the
TLS settings as Celery spells them, and a worker started from the CLI with them."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import service_missing
from tests.integration.conftest import free_port, system_redis_server
from tests.integration.rabbitmq_node import RabbitNode
from tests.integration.workers import ROOT, WorkerProcess


@dataclass(frozen=True)
class Certificates:
    """A CA, a server certificate for 127.0.0.1 and localhost, a client one, and a
    second CA that signed nothing these servers show (an untrusted one)."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def make_certificates(directory: Path) -> Certificates:
    import trustme

    ca, other = trustme.CA(), trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("celeriac-client@example.com")
    names = ("ca.pem", "server.crt", "server.key", "client.crt", "client.key", "other-ca.pem")
    paths = Certificates(*(directory / name for name in names))
    ca.cert_pem.write_to_path(str(paths.ca))
    server.cert_chain_pems[0].write_to_path(str(paths.server_cert))
    server.private_key_pem.write_to_path(str(paths.server_key))
    client.cert_chain_pems[0].write_to_path(str(paths.client_cert))
    client.private_key_pem.write_to_path(str(paths.client_key))
    other.cert_pem.write_to_path(str(paths.other_ca))
    return paths


def _wait_for_tls(
    port: int, certs: Certificates, alive: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the port completes a TLS handshake (the server is up), with a deadline."""
    context = ssl.create_default_context(cafile=str(certs.ca))
    context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
    deadline = time.monotonic() + 60
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", port), timeout=1) as sock,
                context.wrap_socket(sock, server_hostname="127.0.0.1"),
            ):
                return
        except OSError:
            text = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            assert alive.poll() is None, f"the TLS server exited at start-up:\n{text}"
            assert time.monotonic() < deadline, f"the TLS server did not start:\n{text}"
            time.sleep(0.1)  # start-up of another process: nothing to wait on but its port


@contextmanager
def tls_redis_server(directory: Path, certs: Certificates) -> Iterator[int]:
    """A redis-server listening on TLS only; yields its port."""
    binary = system_redis_server()
    if binary is None:
        service_missing("redis-server", "it is not on PATH")
    port, log = free_port(), directory / "redis-tls.log"
    process = subprocess.Popen(
        [str(binary), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
         "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "yes",
         "--save", "", "--dir", str(directory), "--logfile", str(log)],
    )  # fmt: skip
    try:
        _wait_for_tls(port, certs, process, log)
        yield port
    finally:  # also when start-up failed: never leave a server behind
        process.kill()
        process.wait(timeout=10)


def _tls_config(certs: Certificates) -> str:
    return (
        "listeners.tcp = none\n"
        "listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {certs.ca}\n"
        f"ssl_options.certfile = {certs.server_cert}\n"
        f"ssl_options.keyfile = {certs.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )


@contextmanager
def tls_rabbitmq_node(directory: Path, certs: Certificates) -> Iterator[int]:
    """A RabbitMQ node of our own with one TLS listener; yields its port, stops the node."""
    node = RabbitNode(directory, _tls_config(certs), label="tls")
    node.start(ready=False)
    try:
        assert node.process is not None
        _wait_for_tls(node.port, certs, node.process, node.log)
        yield node.port
    finally:
        node.stop()


PROJECT = """
import json, os

from celeriac import Celery

app = Celery("tlsproj", broker=os.environ["TLS_BROKER"], backend=os.environ["TLS_BACKEND"])
app.conf.update(json.loads(os.environ["TLS_SETTINGS"]))


@app.task
def echo(value):
    return value
"""


def redis_tls(
    certs: Certificates, *, ca: Path | None = None, client: bool = True
) -> dict[str, Any]:
    """``broker_use_ssl``/``redis_backend_use_ssl`` for Redis, as Celery spells them."""
    options: dict[str, Any] = {
        "ssl_cert_reqs": ssl.CERT_REQUIRED,
        "ssl_ca_certs": str(ca or certs.ca),
    }
    if client:
        options.update(ssl_certfile=str(certs.client_cert), ssl_keyfile=str(certs.client_key))
    return options


def amqp_tls(certs: Certificates, *, ca: Path | None = None, client: bool = True) -> dict[str, Any]:
    """``broker_use_ssl`` for RabbitMQ, as Celery (py-amqp) spells it."""
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "ca_certs": str(ca or certs.ca)}
    if client:
        options.update(certfile=str(certs.client_cert), keyfile=str(certs.client_key))
    return options


def start_worker(
    tmp_path: Path, broker: str, backend: str, settings: dict[str, Any]
) -> WorkerProcess:
    (tmp_path / "tlsproj.py").write_text(textwrap.dedent(PROJECT))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        "PYTHONUNBUFFERED": "1",
        "TLS_BROKER": broker,
        "TLS_BACKEND": backend,
        "TLS_SETTINGS": json.dumps(settings),
    }
    return WorkerProcess(tmp_path, env, "-P", "threads", "-c", "2", app="tlsproj")
