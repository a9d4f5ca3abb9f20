"""RabbitMQ over TLS end to end: a worker started from the CLI takes tasks over
``amqps://`` and its results (``rpc://``) come back over the same TLS connection; an
untrusted server certificate, a missing client certificate and a server name the
certificate does not hold are refused with an error naming the setting that fixes it.

The RabbitMQ node is this module's own (never the shared one), with one TLS listener
that asks every client for a certificate; it starts in about 7 seconds on an idle machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.exceptions import BrokerAccessRefused, BrokerConnectionError
from tests.integration.tls_servers import (
    Certificates,
    amqp_tls,
    make_certificates,
    start_worker,
    tls_rabbitmq_node,
)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def rabbitmq_port(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[int]:
    with tls_rabbitmq_node(tmp_path_factory.mktemp("rabbitmq"), certs) as port:
        yield port


def test_a_worker_over_amqps_with_client_certificates(
    tmp_path: Path, certs: Certificates, rabbitmq_port: int
) -> None:
    # Given: a RabbitMQ node with a TLS listener that asks for client certificates,
    # and results sent back as messages (rpc://), so over the same TLS connection.
    url = f"amqps://guest:guest@127.0.0.1:{rabbitmq_port}//"
    settings = {"broker_use_ssl": amqp_tls(certs)}
    worker = start_worker(tmp_path, url, "rpc://", settings)
    try:
        worker.wait_ready()
        app = Celery("tlsproj", broker=url, backend="rpc://", **settings)
        assert app.send_task("tlsproj.echo", ("over amqps",)).get(timeout=20) == "over amqps"
        app.close()
    finally:
        assert worker.stop() == 0, worker.text


def test_an_untrusted_rabbitmq_certificate_is_refused(
    certs: Certificates, rabbitmq_port: int
) -> None:
    url = f"amqps://guest:guest@127.0.0.1:{rabbitmq_port}//"
    app = Celery("untrusted", broker=url, broker_use_ssl=amqp_tls(certs, ca=certs.other_ca))
    with pytest.raises(BrokerAccessRefused) as refused:
        app.send_task("tlsproj.echo", ("never sent",))
    assert "not trusted" in str(refused.value)
    assert "broker_use_ssl={'ca_certs': " in str(refused.value)
    app.close()


def test_rabbitmq_refuses_a_client_without_a_certificate(
    certs: Certificates, rabbitmq_port: int
) -> None:
    url = f"amqps://guest:guest@127.0.0.1:{rabbitmq_port}//"
    app = Celery("nocert", broker=url, broker_use_ssl=amqp_tls(certs, client=False))
    with pytest.raises(BrokerConnectionError) as refused:
        app.send_task("tlsproj.echo", ("never sent",))
    assert "broker_use_ssl={'certfile': " in str(refused.value)
    app.close()


def test_rabbitmq_server_hostname_is_the_name_checked(
    certs: Certificates, rabbitmq_port: int
) -> None:
    url = f"amqps://guest:guest@127.0.0.1:{rabbitmq_port}//"
    # The certificate names 127.0.0.1 and localhost: another name is refused...
    wrong = Celery(
        "wrong", broker=url, broker_use_ssl={**amqp_tls(certs), "server_hostname": "rabbit.example"}
    )
    with (
        pytest.raises(BrokerAccessRefused, match="not issued for that host"),
        wrong.connection_for_write() as connection,
    ):
        connection.ensure_connection()
    wrong.close()
    # ... and one the certificate holds is accepted though the URL gives an address.
    right = Celery(
        "right", broker=url, broker_use_ssl={**amqp_tls(certs), "server_hostname": "localhost"}
    )
    with right.connection_for_write() as connection:
        connection.ensure_connection()
    right.close()
