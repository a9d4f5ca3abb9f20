"""User guide, "Security": what a worker accepts (accept_content: pickle only when named),
message signing as the chapter sets it up (the ``security_*`` settings, the ``auth``
serializer, ``app.setup_security()``), and the broker and result store over TLS
(rediss:// with broker_use_ssl and redis_backend_use_ssl) — a project written as that
chapter teaches, run by a real worker."""

from __future__ import annotations

import ssl
import textwrap
import time
from pathlib import Path

import pytest

from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.messages import task_message
from tests.compat.conftest import guide_project
from tests.integration.test_redis_tls import tls_redis  # noqa: F401 - the fixture
from tests.integration.workers import WorkerProcess

PROJECT = """
from celeriac import Celery

app = Celery("guide_security")
app.config_from_object("celeryconfig")
app.conf.accept_content = ["json"]  # what this worker will read; pickle is not named


@app.task
def echo(value):
    return value
"""


def test_a_worker_refuses_content_it_does_not_accept(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with guide_project(tmp_path_factory, "guide_security", PROJECT) as guide:
        proj = guide.module
        # Another producer sends pickle (a message that could run code when unpickled).
        message = task_message(
            task_name="guide_security.echo", task_id="pickled", args=("x",), serializer="pickle"
        )
        proj.app.broker.publish(OutboundMessage("celery", message.encode(), "pickled"))
        worker = guide.worker("-P", "threads")
        try:
            assert proj.echo.delay("json is fine").get(timeout=20) == "json is fine"
            # The two messages are handled side by side: the refusal may land second.
            deadline = time.monotonic() + 20
            while not (letters := proj.app.broker.dead_letters("celery")):
                assert time.monotonic() < deadline, "the pickled message was not dead-lettered"
                time.sleep(0.05)  # polled: the dead letter is the observable outcome
            [letter] = letters
        finally:
            assert worker.stop() == 0, worker.text
        assert letter.message_id == "pickled"
        assert letter.reason == DeadLetterReason.CONTENT_DISALLOWED
        assert "pickle" in letter.detail and "accept_content" in letter.detail


SIGNED_PROJECT = """
from celeriac import Celery

app = Celery("guide_signed")
app.config_from_object("celeryconfig")
app.conf.update(
    security_key={key!r},
    security_certificate={cert!r},
    security_cert_store={store!r},
    security_digest="sha256",
    task_serializer="auth",
    accept_content=["auth"],
)
app.setup_security()


@app.task
def add(x, y):
    return x + y
"""


def test_signed_messages_as_the_chapter_sets_them_up(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from tests.signing_certs import write_identity

    certs = tmp_path_factory.mktemp("guide_certs")
    worker_id = write_identity(certs, "worker")
    source = SIGNED_PROJECT.format(
        key=str(worker_id.key), cert=str(worker_id.cert), store=str(certs / "*.pem")
    )
    with guide_project(tmp_path_factory, "guide_signed", source) as guide:
        proj = guide.module
        # A message written into the queue by someone without the key: never run.
        forged = task_message(task_name="guide_signed.add", task_id="forged", args=(1, 1))
        proj.app.broker.publish(OutboundMessage("celery", forged.encode(), "forged"))
        worker = guide.worker("-P", "threads")
        try:
            assert proj.add.delay(2, 3).get(timeout=20) == 5  # signed by the app's key
            deadline = time.monotonic() + 20
            while not (letters := proj.app.broker.dead_letters("celery")):
                assert time.monotonic() < deadline, "the forged message was not dead-lettered"
                time.sleep(0.05)  # polled: the dead letter is the observable outcome
        finally:
            assert worker.stop() == 0, worker.text
        [letter] = letters
        assert letter.message_id == "forged"
        assert letter.reason == DeadLetterReason.BAD_SIGNATURE


TLS_PROJECT = """
import ssl

from celeriac import Celery

CA = {ca!r}
URL = "rediss://127.0.0.1:{port}/0"
app = Celery("guide_tls", broker=URL, backend=URL)
app.conf.broker_use_ssl = {{"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": CA}}
app.conf.redis_backend_use_ssl = {{"ssl_cert_reqs": ssl.CERT_REQUIRED, "ssl_ca_certs": CA}}


@app.task
def echo(value):
    return value
"""


def test_broker_and_results_over_tls(
    tls_redis: tuple[int, Path],  # noqa: F811 - the fixture imported above
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port, ca = tls_redis
    source = textwrap.dedent(TLS_PROJECT.format(ca=str(ca), port=port))
    with guide_project(tmp_path_factory, "guide_tls", source) as guide:
        proj = guide.module
        assert proj.app.conf.broker_use_ssl["ssl_cert_reqs"] == ssl.CERT_REQUIRED
        worker = WorkerProcess.started(guide.path, guide.env, "-P", "threads", app="guide_tls")
        try:
            assert proj.echo.delay("secret").get(timeout=20) == "secret"
        finally:
            assert worker.stop() == 0, worker.text
