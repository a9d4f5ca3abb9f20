"""Message signing: HMAC-SHA256 with rotating keys (``security_keys``) and Celery's ``auth``
serializer (``app.setup_security()``, X.509), signed on send and verified by the worker
before anything else reads the message; unsigned and tampered messages are dead-lettered
with ``bad_signature`` and never decoded further."""

from __future__ import annotations

import dataclasses
import pickle
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.exceptions import EncodeError, ImproperlyConfigured, SecurityError
from celeriac.messages import Message, task_message
from celeriac.security import HmacSigner, Signer, setup_security
from celeriac.testing import drain
from tests.signing_certs import Identity, write_identity

KEY = "k" * 32
OLD_KEY = b"o" * 40
UNPICKLED: list[str] = []  # what the booby-trapped pickle below did, if it was ever loaded


def spring(what: str) -> None:
    UNPICKLED.append(what)


class Trap:
    """Unpickling this runs code: it must never happen for an unverified message."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (spring, ("trap sprung",))


def signer_of(app: Celery) -> Signer:
    signer = app.signer
    assert signer is not None, "this app does not sign"
    return signer


def _call(task_id: str = "call-1", **kw: Any) -> Message:
    return task_message(task_name="t.add", task_id=task_id, args=(1, 2), **kw)


# -- HMAC -------------------------------------------------------------------------------------
def test_hmac_signature_verifies_and_is_gone_from_what_the_worker_reads() -> None:
    signer = HmacSigner([KEY])
    sent = signer.sign(_call(extra_headers={"tenant": ("a", 1)}), "json")
    received = Message.decode(sent.encode())
    verified = signer.verify(received)
    assert "signature" in received.headers and "signature" not in verified.message.headers
    assert verified.message.headers["tenant"] == ["a", 1]  # a tuple signs as its JSON list
    assert verified.message.body == _call().body


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: dataclasses.replace(m, body=m.body.replace(b"[1,2]", b"[1,3]")),
        lambda m: dataclasses.replace(m, headers={**m.headers, "task": "t.other"}),
        lambda m: dataclasses.replace(m, headers={**m.headers, "eta": "2030-01-01T00:00:00"}),
        lambda m: dataclasses.replace(m, properties={"priority": 9}),
        lambda m: dataclasses.replace(m, content_type="application/x-python-serialize"),
    ],
    ids=["body", "task-name", "added-header", "properties", "content-type"],
)
def test_hmac_refuses_any_change_after_signing(tamper: Any) -> None:
    signer = HmacSigner([KEY])
    sent = Message.decode(signer.sign(_call(), "json").encode())
    with pytest.raises(SecurityError, match="bad signature on message call-1"):
        signer.verify(tamper(sent))


def test_hmac_refuses_unsigned_and_unreadable_signatures() -> None:
    signer = HmacSigner([KEY])
    with pytest.raises(SecurityError, match="is not signed"):
        signer.verify(_call())
    garbled = _call(extra_headers={})
    garbled.headers["signature"] = {"alg": "hmac-sha256", "sig": "not base64!"}
    with pytest.raises(SecurityError, match="not base64"):
        signer.verify(garbled)
    garbled.headers["signature"] = "a string"
    with pytest.raises(SecurityError, match="not readable"):
        signer.verify(garbled)


def test_key_rotation_signs_with_the_first_key_and_accepts_any() -> None:
    # Given messages signed before the rotation, with the old key
    before = Message.decode(HmacSigner([OLD_KEY]).sign(_call("old"), "json").encode())
    # When the new key is put first, the old one kept second
    rotated = HmacSigner([KEY, OLD_KEY])
    after = Message.decode(rotated.sign(_call("new"), "json").encode())
    # Then both verify, and what is signed now verifies with the new key alone
    assert rotated.verify(before).message.id == "old"
    assert HmacSigner([KEY]).verify(after).message.id == "new"
    # And once the old key is dropped, its messages are refused
    with pytest.raises(SecurityError, match="no key in security_keys"):
        HmacSigner([KEY]).verify(before)


def test_hmac_keys_are_checked() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"security_keys\[0\] is 5 bytes.*token_hex"):
        HmacSigner(["short"])
    with pytest.raises(ImproperlyConfigured, match="a list of keys"):
        HmacSigner(KEY)  # the mistake under test: one string
    with pytest.raises(ImproperlyConfigured, match=r"security_keys\[1\] must be a str or bytes"):
        HmacSigner([KEY, 42])  # the mistake under test
    with pytest.raises(ImproperlyConfigured, match="security_keys"):
        Celery("t", broker="memory://", security_keys=KEY)


def test_the_signature_header_is_reserved() -> None:
    with pytest.raises(EncodeError, match="reserved for message signing"):
        HmacSigner([KEY]).sign(_call(extra_headers={"signature": "mine"}), "json")


def _app(**settings: Any) -> Celery:
    return Celery("t", broker="memory://", backend="cache+memory://", **settings)


def _publish(app: Celery, message: Message) -> None:
    app.broker.publish(OutboundMessage("celery", message.encode(), message.id))


def test_worker_runs_signed_calls_and_dead_letters_the_rest() -> None:
    app = _app(security_keys=[KEY])
    ran: list[Any] = []

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        ran.append((x, y))
        return x + y

    forged = Message.decode(signer_of(app).sign(_call("forged"), "json").encode())
    forged.body = forged.body.replace(b"[1,2]", b"[5,5]")
    _publish(app, _call("unsigned"))
    _publish(app, forged)
    good = add.delay(2, 3)
    assert drain(app) == 3
    assert good.get(timeout=1) == 5 and ran == [(2, 3)]  # no task code ran for the others
    letters = {letter.message_id: letter for letter in app.broker.dead_letters("celery")}
    assert {letter.reason for letter in letters.values()} == {DeadLetterReason.BAD_SIGNATURE}
    assert "is not signed" in letters["unsigned"].detail
    assert "bad signature" in letters["forged"].detail
    # Nothing is stored under the id a forged message names.
    assert app.AsyncResult("forged").state == "PENDING"
    app.close()


def test_pickle_is_read_only_after_the_signature_verifies() -> None:
    app = _app(security_keys=[KEY], task_serializer="pickle", accept_content=["pickle"])

    @app.task(name="t.size")
    def size(value: Any) -> int:
        return len(value)

    trap = task_message(task_name="t.size", task_id="trap", args=(Trap(),), serializer="pickle")
    _publish(app, trap)
    good = size.delay({1, 2, 3})  # a set: pickled, signed
    drain(app)
    assert good.get(timeout=1) == 3
    assert UNPICKLED == []  # the unsigned pickle was never loaded
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.BAD_SIGNATURE
    pickle.loads(trap.body)
    assert UNPICKLED == ["trap sprung"]  # it was armed
    UNPICKLED.clear()
    app.close()


def test_pickle_stays_refused_when_signed_but_not_accepted() -> None:
    app = _app(security_keys=[KEY], task_serializer="pickle")  # accept_content: json

    @app.task(name="t.size")
    def size(value: Any) -> int:
        return len(value)

    size.delay({1, 2})
    drain(app)
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.CONTENT_DISALLOWED
    app.close()


# -- X.509: Celery's auth serializer ----------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Identity]:
    where = tmp_path_factory.mktemp("pki")
    return {
        "worker": write_identity(where / "store", "worker", serial=1),
        "client": write_identity(where / "store", "client", serial=2),
        "stranger": write_identity(where / "elsewhere", "stranger", serial=3),
        "locked": write_identity(where / "locked", "locked", serial=4, password=b"s3cret"),
        "expired": write_identity(where / "expired", "expired", serial=5, expired=True),
        "ec": write_identity(where / "ec", "ec", serial=6, ec_key=True),
    }


def _secured(pki: dict[str, Identity], who: str = "client", **settings: Any) -> Celery:
    identity = pki[who]
    return _app(
        task_serializer="auth",
        accept_content=["auth"],
        security_key=str(identity.key),
        security_certificate=str(identity.cert),
        security_cert_store=str(pki["worker"].cert.parent / "*.pem"),
        **settings,
    )


def test_auth_signs_calls_and_the_worker_verifies_them(pki: dict[str, Identity]) -> None:
    app = _secured(pki)
    app.setup_security()

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    result = add.delay(2, 3)
    drain(app)
    assert result.get(timeout=1) == 5  # results stay JSON and are read back


def test_auth_messages_on_the_wire(pki: dict[str, Identity]) -> None:
    app = _secured(pki)
    app.setup_security()
    plain = _call()
    sent = Message.decode(signer_of(app).sign(plain, "auth").encode())
    assert sent.content_type == "application/data"  # Celery's auth content type
    field = sent.headers["signature"]
    assert field["alg"] == "x509" and field["ct"] == "application/json"
    assert field["signer"] == "client 2"  # issuer and serial number, as in Celery
    verified = signer_of(app).verify(sent)
    assert verified.message.content_type == "application/json"
    assert verified.message.body == plain.body
    # A call sent with another serializer is not signed (as in Celery), so it is refused.
    assert signer_of(app).sign(plain, "json") is plain


def test_auth_refuses_unknown_signers_tampering_and_unsigned(pki: dict[str, Identity]) -> None:
    worker = _secured(pki, "worker")
    worker.setup_security()
    stranger = _secured(pki, "stranger")
    stranger.setup_security()  # its own store trusts the others, not itself: fine to send
    ran: list[Any] = []

    @worker.task(name="t.add")
    def add(x: int, y: int) -> int:
        ran.append((x, y))
        return x + y

    tampered = Message.decode(signer_of(worker).sign(_call("tampered"), "auth").encode())
    tampered.body = tampered.body.replace(b"[1,2]", b"[9,9]")
    _publish(worker, tampered)
    _publish(worker, signer_of(stranger).sign(_call("stranger"), "auth"))
    _publish(worker, _call("unsigned"))
    good = add.delay(1, 1)
    drain(worker)
    assert good.get(timeout=1) == 2 and ran == [(1, 1)]
    details = {letter.message_id: letter.detail for letter in worker.broker.dead_letters("celery")}
    assert "Bad signature" in details["tampered"]
    assert "Unknown certificate: 'stranger 3'" in details["stranger"]
    assert "is not signed" in details["unsigned"]
    assert {letter.reason for letter in worker.broker.dead_letters("celery")} == {
        DeadLetterReason.BAD_SIGNATURE
    }
    worker.close()
    stranger.close()


def test_auth_with_pickle_inside_and_an_encrypted_key(pki: dict[str, Identity]) -> None:
    locked = pki["locked"]
    app = _secured(pki, security_key_password="s3cret")
    app.setup_security(
        key=str(locked.key), cert=str(locked.cert),
        store=str(locked.cert), serializer="pickle",
    )  # fmt: skip

    @app.task(name="t.size")
    def size(value: Any) -> int:
        return len(value)

    result = size.delay({1, 2, 3})
    drain(app)
    assert result.get(timeout=1) == 3
    app.close()


def test_setup_security_errors(pki: dict[str, Identity], tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="task_serializer='auth' and accept_content"):
        _app(security_keys=None).setup_security()
    with pytest.raises(ImproperlyConfigured, match="needs security_key, security_certificate"):
        _app(task_serializer="auth", accept_content=["auth"]).setup_security()
    with pytest.raises(ImproperlyConfigured, match="names no certificate file"):
        _secured(pki).setup_security(store=str(tmp_path / "*.pem"))
    with pytest.raises(ImproperlyConfigured, match="security_digest 'md5'"):
        _secured(pki, security_digest="md5").setup_security()
    with pytest.raises(ImproperlyConfigured, match="two ways"):
        _secured(pki, security_keys=[KEY]).setup_security()
    with pytest.raises(ImproperlyConfigured, match="allowed_serializers"):
        _secured(pki).setup_security(allowed_serializers=["yaml"])
    with pytest.raises(SecurityError, match="Invalid private key"):
        _secured(pki, "locked").setup_security()  # encrypted, no password given
    with pytest.raises(SecurityError, match="only RSA"):
        _secured(pki, "ec").setup_security()
    with pytest.raises(SecurityError, match="Expired certificate"):
        _secured(pki).setup_security(store=str(pki["expired"].cert))
    with pytest.raises(SecurityError, match=r"Invalid certificate.*locked.key, in security_cert"):
        _secured(pki).setup_security(store=str(pki["locked"].key.parent))  # a key among them
    with pytest.raises(ImproperlyConfigured, match="cannot read security_key"):
        _secured(pki).setup_security(key=str(tmp_path / "missing.key"))


def test_auth_without_setup_security_is_refused_at_the_call() -> None:
    app = _app(task_serializer="auth", accept_content=["auth"])

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    with pytest.raises(EncodeError, match=r"call app.setup_security\(\)"):
        add.delay(1, 2)
    app.close()


def test_celery_module_function_sets_up_the_current_app(pki: dict[str, Identity]) -> None:
    app = _secured(pki)
    setup_security(app=app)
    assert app.signer is not None and app.signer.alg == "x509"
    app.close()


def test_results_and_events_are_not_signed_so_auth_is_refused_there(
    pki: dict[str, Identity],
) -> None:
    app = _secured(pki, result_serializer="auth")
    app.setup_security()
    with pytest.raises(ImproperlyConfigured, match="result_serializer='auth': results are not"):
        app.backend  # noqa: B018 - built on first use
    app.close()
    app = _secured(pki, event_serializer="auth")
    with pytest.raises(ValueError, match="event_serializer='auth': events are not signed"):
        app.events.Dispatcher()
    app.close()


def test_a_worker_without_setup_security_names_the_fix(pki: dict[str, Identity]) -> None:
    sender = _secured(pki)
    sender.setup_security()
    worker = _app(accept_content=["auth"])  # the worker's app forgot setup_security()

    @worker.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    _publish(worker, signer_of(sender).sign(_call("signed"), "auth"))
    drain(worker)
    [letter] = worker.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.MALFORMED
    assert "call app.setup_security() in the worker's app too" in letter.detail
    sender.close()
    worker.close()


def test_a_message_signed_the_other_way_is_refused_naming_both(pki: dict[str, Identity]) -> None:
    certificates = _secured(pki)
    certificates.setup_security()
    hmac_signed = Message.decode(HmacSigner([KEY]).sign(_call(), "json").encode())
    with pytest.raises(SecurityError, match="signed with 'hmac-sha256'; this app verifies 'x509'"):
        signer_of(certificates).verify(hmac_signed)
    x509_signed = Message.decode(signer_of(certificates).sign(_call(), "auth").encode())
    with pytest.raises(SecurityError, match="signed with 'x509'; this app verifies 'hmac-sha256'"):
        HmacSigner([KEY]).verify(x509_signed)
    certificates.close()


def test_a_worker_that_cannot_verify_refuses_to_start(
    pki: dict[str, Identity], caplog: pytest.LogCaptureFixture
) -> None:
    from celeriac.worker.exitcodes import EX_CONFIG
    from celeriac.worker.worker import Worker

    forgot = _app(accept_content=["auth"])  # setup_security() never called
    assert Worker(forgot, pool="solo", install_signal_handlers=False).start() == EX_CONFIG
    assert "call app.setup_security() where the app is defined" in caplog.text
    twice = _secured(pki)
    twice.setup_security()
    twice.conf.security_keys = [KEY]
    assert Worker(twice, pool="solo", install_signal_handlers=False).start() == EX_CONFIG
    assert "security_keys was set after setup_security()" in caplog.text
    forgot.close()
    twice.close()
