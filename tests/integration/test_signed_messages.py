"""Signed task messages with a real worker (prefork) on Redis and on RabbitMQ, both ways:
Celery's ``auth`` serializer (``app.setup_security()``, X.509) and HMAC (``security_keys``).
A signed call runs; a tampered and an unsigned message put straight into the queue are
dead-lettered with ``bad_signature`` before any task code runs; the worker goes on."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from celeriac.brokers.base import DeadLetter, DeadLetterReason, OutboundMessage
from celeriac.messages import task_message
from tests.compat.conftest import guide_project
from tests.signing_certs import write_identity

PROJECT = """
import os

import redis

from celeriac import Celery

app = Celery("signed_proj")
app.config_from_object("celeryconfig")
if {mode!r} == "x509":
    app.conf.update(
        task_serializer="auth",
        accept_content=["auth"],
        security_key={key!r},
        security_certificate={cert!r},
        security_cert_store={store!r},
    )
    app.setup_security()
else:
    app.conf.security_keys = ["{hmac_key}", "{old_key}"]
marks = redis.Redis.from_url(app.conf.result_backend)


@app.task
def record(value):
    marks.rpush(os.environ["GUIDE_PREFIX"] + ":ran", value)  # what task code ran
    return value
"""


@pytest.fixture(scope="module")
def identity(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    where = tmp_path_factory.mktemp("pki")
    made = write_identity(where / "keys", "sender", serial=7)
    write_identity(where / "keys", "other", serial=8)  # a second certificate in the store
    return {"key": str(made.key), "cert": str(made.cert), "store": str(made.cert.parent / "*.pem")}


def _wait_dead_letters(app: Any, count: int, timeout: float = 20) -> list[DeadLetter]:
    deadline = time.monotonic() + timeout
    while len(letters := app.broker.dead_letters("celery")) < count:
        assert time.monotonic() < deadline, f"{len(letters)} of {count} dead letters"
        time.sleep(0.1)  # polled: the dead letters are the observable outcome
    return letters


@pytest.mark.parametrize("broker", ["redis", "amqp"])
@pytest.mark.parametrize("mode", ["x509", "hmac"])
def test_signed_calls_run_and_bad_ones_are_dead_lettered(
    mode: str,
    broker: str,
    identity: dict[str, str],
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    url = str(request.getfixturevalue("amqp_url")) if broker == "amqp" else ""
    source = PROJECT.format(mode=mode, hmac_key="n" * 32, old_key="o" * 32, **identity)
    with guide_project(tmp_path_factory, "signed_proj", source, broker=url) as guide:
        app = guide.module.app
        serializer = "auth" if mode == "x509" else "json"
        # Given a signed message whose argument was changed afterwards, and an unsigned one
        signed = app.signer.sign(
            task_message(task_name="signed_proj.record", task_id="tampered", args=("x",),
                         serializer=app.signer.body_serializer(serializer)),
            serializer,
        )  # fmt: skip
        tampered = dataclasses.replace(signed, body=signed.body.replace(b'"x"', b'"y"'))
        unsigned = task_message(task_name="signed_proj.record", task_id="unsigned", args=("u",))
        for message in (tampered, unsigned):
            app.broker.publish(OutboundMessage("celery", message.encode(), message.id))
        # When a prefork worker takes them, then a signed call
        worker = guide.worker("-c", "1")
        try:
            assert guide.module.record.delay("valid").get(timeout=30) == "valid"
            letters = {letter.message_id: letter for letter in _wait_dead_letters(app, 2)}
        finally:
            assert worker.stop() == 0, worker.text
        # Then only the signed call ran, and the others are dead letters with the reason
        assert guide.redis().lrange(f"{guide.prefix}:ran", 0, -1) == ["valid"]
        assert {letter.reason for letter in letters.values()} == {DeadLetterReason.BAD_SIGNATURE}
        assert "not signed" in letters["unsigned"].detail
        assert "ad signature" in letters["tampered"].detail  # "Bad signature" / "bad signature"
        assert "dead-lettered (bad_signature)" in worker.text
        assert app.AsyncResult("tampered").state == "PENDING"  # nothing stored for a forgery
