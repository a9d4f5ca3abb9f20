"""Servers that speak only TLS, for the TLS tests: certificates made by ``trustme`` at test
time, a redis-server on a TLS port of its own, and a RabbitMQ node of its own (never the
shared one on 5672) with a TLS listener. Both ask every client for a certificate. Also the
TLS settings as Celery spells them, and a worker started from the CLI with them."""

from __future__ import annotations

import json
import os
import shutil
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
from tests.integration.workers import ROOT, WorkerProcess

# Debian's real scripts: its /usr/sbin wrappers switch to the rabbitmq user and lose our
# environment. Elsewhere (a generic-unix install, Homebrew) the ones on PATH are real.
_DEBIAN_BIN = Path("/usr/lib/rabbitmq/bin")


def _rabbitmq_tool(name: str) -> Path | None:
    if (_DEBIAN_BIN / name).exists():
        return _DEBIAN_BIN / name
    found = shutil.which(name)
    return Path(found) if found else None


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


def _rabbitmq_env(directory: Path, node: str, certs: Certificates) -> tuple[dict[str, str], int]:
    port = free_port()
    config, plugins, env_file = (directory / n for n in ("rabbitmq.conf", "plugins", "env.conf"))
    config.write_text(
        "listeners.tcp = none\n"
        f"listeners.ssl.default = 127.0.0.1:{port}\n"
        f"ssl_options.cacertfile = {certs.ca}\n"
        f"ssl_options.certfile = {certs.server_cert}\n"
        f"ssl_options.keyfile = {certs.server_key}\n"
        "ssl_options.verify = verify_peer\n"
        "ssl_options.fail_if_no_peer_cert = true\n"
    )
    plugins.write_text("[].\n")  # no management plugin: a faster start, no HTTP port
    env_file.write_text("")  # not the machine's rabbitmq-env.conf (it names the shared node)
    (directory / "home").mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
        "HOME": str(directory / "home"),  # our own Erlang cookie
        "RABBITMQ_NODENAME": node,
        "RABBITMQ_NODE_PORT": str(free_port()),
        "RABBITMQ_DIST_PORT": str(free_port()),
        "RABBITMQ_MNESIA_BASE": str(directory / "mnesia"),
        "RABBITMQ_LOG_BASE": str(directory / "log"),
        "RABBITMQ_CONFIG_FILE": str(config),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(directory / "advanced.config"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
        "RABBITMQ_CONF_ENV_FILE": str(env_file),
        "RABBITMQ_PID_FILE": str(directory / "node.pid"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    return env, port


@contextmanager
def tls_rabbitmq_node(directory: Path, certs: Certificates) -> Iterator[int]:
    """A RabbitMQ node of our own with one TLS listener; yields its port, stops the node."""
    server, ctl = _rabbitmq_tool("rabbitmq-server"), _rabbitmq_tool("rabbitmqctl")
    if server is None or ctl is None or not shutil.which("erl"):
        service_missing("rabbitmq-server", "rabbitmq-server, rabbitmqctl or erl is not installed")
    assert server is not None and ctl is not None
    node = f"celeriac-tls-{os.getpid()}-{free_port()}@localhost"
    env, port = _rabbitmq_env(directory, node, certs)
    log = directory / "log" / f"{node}.log"
    process = subprocess.Popen(
        [str(server)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_tls(port, certs, process, log)
        yield port
    finally:
        _stop_node(process, [str(ctl), "-n", node, "stop"], env)


def _stop_node(process: subprocess.Popen[bytes], stop: list[str], env: dict[str, str]) -> None:
    """SIGTERM stops a node as cleanly as ``rabbitmqctl stop`` does, without starting a
    second Erlang VM (seconds saved); the command, then SIGKILL, if it does not."""
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        subprocess.run(stop, env=env, capture_output=True, timeout=60)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


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
