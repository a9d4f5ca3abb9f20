"""TLS options as Celery spells them, parsed before any connection: the certificate
requirement (verified by default), ``ssl_*`` in a ``rediss://`` URL, py-amqp's keys for
RabbitMQ, files that cannot be read, and the message for a refused certificate."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest

from celeriac._redis import parse_target as redis_target
from celeriac.brokers.amqp.params import parse_target as amqp_target
from celeriac.config import tls
from celeriac.exceptions import ImproperlyConfigured


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    import trustme

    path = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(path))
    return path


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        (ssl.CERT_REQUIRED, ssl.CERT_REQUIRED),
        ("CERT_OPTIONAL", ssl.CERT_OPTIONAL),
        ("none", ssl.CERT_NONE),
        (2, ssl.CERT_REQUIRED),
    ],
)
def test_the_certificate_requirement_in_any_of_celerys_spellings(
    given: object, mode: ssl.VerifyMode
) -> None:
    assert tls.verify_mode(given, "ssl_cert_reqs") is mode


@pytest.mark.parametrize("given", ["CERT_MAYBE", None, True, 7])
def test_an_unknown_certificate_requirement_is_refused(given: object) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"ssl_cert_reqs is .*ssl\.CERT_REQUIRED"):
        tls.verify_mode(given, "ssl_cert_reqs")


def test_rediss_verifies_the_certificate_and_host_name_by_default() -> None:
    options = dict(redis_target("rediss://127.0.0.1:6380/0").options)
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["ssl_check_hostname"] is True


def test_ssl_options_in_a_rediss_url_win_and_leave_the_url(ca: Path) -> None:
    url = f"rediss://:pw@127.0.0.1:6380/2?ssl_cert_reqs=CERT_REQUIRED&ssl_ca_certs={ca}"
    target = redis_target(url, {"ssl_ca_certs": "/elsewhere.pem", "socket_timeout": 3})
    options = dict(target.options)
    assert options["ssl_ca_certs"] == str(ca) and options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert target.url == "rediss://:pw@127.0.0.1:6380/2"  # redis-py would read them again
    unchecked = redis_target("rediss://h:6380/0?ssl_check_hostname=false&db=3")
    assert dict(unchecked.options)["ssl_check_hostname"] is False
    assert unchecked.url == "rediss://h:6380/0?db=3"


def test_ssl_options_in_a_plain_redis_url_are_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="use a rediss:// URL instead of redis://"):
        redis_target("redis://127.0.0.1:6379/0?ssl_cert_reqs=required")


def test_no_verification_is_said_once_and_checks_no_host_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, "celeriac.tls"):
        options = dict(redis_target("rediss://:pw@h:6380/0?ssl_cert_reqs=none").options)
    assert options["ssl_cert_reqs"] == ssl.CERT_NONE and "ssl_check_hostname" not in options
    [record] = caplog.records
    assert "does not verify the server's certificate (CERT_NONE)" in record.getMessage()
    assert "pw" not in record.getMessage()


def test_a_certificate_file_that_cannot_be_read_is_refused_up_front(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ImproperlyConfigured, match=r"ssl_ca_certs=.*nope\.pem.*cannot be read"):
        redis_target("rediss://h:6380/0", {"ssl_ca_certs": str(missing)})
    with pytest.raises(ImproperlyConfigured, match=r"broker_use_ssl has certfile=.*cannot be read"):
        amqp_target("amqps://h//", {}, {"certfile": str(missing)})


def test_amqp_keys_shape_the_context(ca: Path) -> None:
    target = amqp_target(
        "amqps://u:p@10.0.0.5//", {},
        {"ca_certs": str(ca), "cert_reqs": "CERT_REQUIRED", "server_hostname": "rabbit.internal",
         "ciphers": "ECDHE+AESGCM", "tls_minimum_version": ssl.TLSVersion.TLSv1_2},
    )  # fmt: skip
    context = target.ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname and context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert target.connect_options() == {"context": context, "server_hostname": "rabbit.internal"}
    assert not target.client_certificate
    assert amqp_target("amqp://h//", {}).connect_options() == {}


def test_amqp_without_verification_checks_no_host_name() -> None:
    context = amqp_target("amqps://h//", {}, {"cert_reqs": ssl.CERT_NONE}).ssl_context
    assert context is not None and context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


@pytest.mark.parametrize(
    ("use_ssl", "match"),
    [
        ({"keyfile": __file__}, "a keyfile but no certfile"),
        ({"ciphers": "NO-SUCH-CIPHER"}, r"broker_use_ssl\['ciphers'\]"),
        ({"tls_maximum_version": 99}, r"broker_use_ssl\['tls_maximum_version'\]"),
        ({"context": {}}, "keys celeriac does not read for RabbitMQ: \\['context'\\]"),
        ({"cert_reqs": "sometimes"}, r"broker_use_ssl\['cert_reqs'\] is 'sometimes'"),
    ],
)
def test_bad_amqp_tls_options_are_refused(use_ssl: dict[str, object], match: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=match):
        amqp_target("amqps://h//", {}, use_ssl)


@pytest.mark.parametrize("query", ["ssl_ca_certs=/ca.pem", "cafile=/ca.pem", "no_verify_ssl=1"])
def test_tls_options_in_an_amqp_url_are_refused(query: str) -> None:
    with pytest.raises(ImproperlyConfigured, match="set broker_use_ssl"):
        amqp_target(f"amqps://h//?{query}", {})


def test_a_refused_certificate_is_explained_with_the_option_to_set() -> None:
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate in certificate chain"
    try:
        raise ConnectionError("Error 1 connecting") from untrusted
    except ConnectionError as exc:
        text = tls.refused_handshake(
            exc, what="Redis broker", url="rediss://h:6380/0", setting="broker_use_ssl",
            prefix="ssl_",
        )  # fmt: skip
    assert text is not None and "is not trusted (self-signed certificate" in text
    assert "broker_use_ssl={'ssl_ca_certs': '/path/to/ca.pem'}" in text
    cut = ConnectionResetError(104, "Connection reset by peer")
    assert tls.refused_handshake(cut, what="x", url="u", setting="s", prefix="") is None
    hint = tls.client_certificate_hint(cut, setting="broker_use_ssl", prefix="")
    assert "broker_use_ssl={'certfile': " in hint
    assert tls.client_certificate_hint(TimeoutError(), setting="s", prefix="") == ""


@pytest.mark.parametrize("use_ssl", [True, {"ssl_cert_reqs": "required"}])
def test_broker_use_ssl_with_a_plain_redis_url_is_refused(use_ssl: object) -> None:
    from celeriac import Celery

    app = Celery("t", broker="redis://:pw@127.0.0.1:6379/0", broker_use_ssl=use_ssl)
    with pytest.raises(ImproperlyConfigured, match=r"broker_use_ssl is set.*use rediss://") as info:
        _ = app.broker
    assert "pw" not in str(info.value)
    app.close()
