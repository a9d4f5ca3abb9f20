"""Redis over TLS end to end: a worker started from the CLI takes tasks over ``rediss://``
and its results come back over TLS; an untrusted server certificate and a missing client
certificate are refused with an error naming the setting that fixes it.

The redis-server is this module's own, on a TLS port only, asking every client for a
certificate; the certificates are made by ``trustme`` at test time. (RabbitMQ over TLS:
``test_amqp_tls.py``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.exceptions import BackendConnectionError, BrokerAccessRefused
from celeriac.results.redis import RedisBackend
from tests.integration.tls_servers import (
    Certificates,
    make_certificates,
    redis_tls,
    start_worker,
    tls_redis_server,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[int]:
    with tls_redis_server(tmp_path_factory.mktemp("redis"), certs) as port:
        yield port


def test_a_worker_over_rediss_with_client_certificates(
    tmp_path: Path, certs: Certificates, redis_port: int
) -> None:
    # Given: broker and results on a TLS-only Redis that asks for client certificates.
    url = f"rediss://127.0.0.1:{redis_port}/0"
    tls = redis_tls(certs)
    settings = {"broker_use_ssl": tls, "redis_backend_use_ssl": tls}
    worker = start_worker(tmp_path, url, url, settings)
    try:
        worker.wait_ready()
        app = Celery("tlsproj", broker=url, backend=url, **settings)
        # When: the test sends a task; Then: the worker's result comes back over TLS.
        assert app.send_task("tlsproj.echo", ("over rediss",)).get(timeout=20) == "over rediss"
        app.close()
    finally:
        assert worker.stop() == 0, worker.text


def test_rediss_url_query_options(certs: Certificates, redis_port: int) -> None:
    # Celery's URL form, with the constant's name as Celery's Redis result store takes it.
    query = (
        f"ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={certs.ca}"
        f"&ssl_certfile={certs.client_cert}&ssl_keyfile={certs.client_key}"
    )
    backend = RedisBackend(f"rediss://127.0.0.1:{redis_port}/1?{query}", key_prefix="q")
    backend.mark_as_done("from-url", {"ok": True})
    assert backend.get_task_meta("from-url")["result"] == {"ok": True}
    backend.close()


def test_an_untrusted_redis_certificate_is_refused(certs: Certificates, redis_port: int) -> None:
    url = f"rediss://127.0.0.1:{redis_port}/0"
    # Given: a client trusting another CA than the one that signed the server's certificate.
    app = Celery("untrusted", broker=url, broker_use_ssl=redis_tls(certs, ca=certs.other_ca))
    with pytest.raises(BrokerAccessRefused) as refused:
        app.send_task("tlsproj.echo", ("never sent",))
    assert "not trusted" in str(refused.value)
    assert "broker_use_ssl={'ssl_ca_certs': " in str(refused.value)
    app.close()
    # The result store's error names its own setting.
    backend = RedisBackend(url, transport_options=redis_tls(certs, ca=certs.other_ca))
    with pytest.raises(BackendConnectionError, match=r"redis_backend_use_ssl=\{'ssl_ca_certs'"):
        backend.get_task_meta("any")
    backend.close()


def test_redis_refuses_a_client_without_a_certificate(certs: Certificates, redis_port: int) -> None:
    backend = RedisBackend(
        f"rediss://127.0.0.1:{redis_port}/0", transport_options=redis_tls(certs, client=False)
    )
    with pytest.raises(BackendConnectionError) as refused:
        backend.get_task_meta("any")
    # The server's alert, or (TLS 1.3) only the connection it cut right after the handshake.
    assert "redis_backend_use_ssl={'ssl_certfile': " in str(refused.value)
    backend.close()


def test_a_worker_with_an_untrusted_certificate_stops_at_once(
    tmp_path: Path, certs: Certificates, redis_port: int
) -> None:
    url = f"rediss://127.0.0.1:{redis_port}/0"
    settings = {"broker_use_ssl": redis_tls(certs, ca=certs.other_ca)}
    worker = start_worker(tmp_path, url, url, settings)
    try:
        code = worker.wait(timeout=30)  # no retries: another attempt cannot fix it
    finally:
        worker.stop()
    assert code != 0
    assert "broker_use_ssl={'ssl_ca_certs': " in worker.text, worker.text
