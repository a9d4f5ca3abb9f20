"""The RabbitMQ engine's pure parts, no server: URLs, options, and the delay routing."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest
import trustme

from celeriac import Celery
from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.params import QueueTypes, parse_target, redact, server_version
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured


@pytest.mark.parametrize(
    ("url", "vhost", "port"),
    [
        ("amqp://guest:guest@localhost:5672//", "/", 5672),
        ("amqp://localhost", "/", 5672),
        ("amqp://u:p@rabbit/prod", "prod", 5672),
        ("amqp://u:p@rabbit/a%2Fb", "a/b", 5672),
        ("pyamqp://u:p@rabbit:5673/x", "x", 5673),
        ("amqps://u:p@rabbit/x", "x", 5671),
    ],
)
def test_urls(url: str, vhost: str, port: int) -> None:
    target = parse_target(url, {})
    assert target.vhost == vhost
    assert f":{port}/" in target.url
    assert (target.ssl_context is not None) == url.startswith("amqps")


def test_passwords_are_redacted_and_query_options_read() -> None:
    target = parse_target("amqp://worker:s3cret@rabbit/prod?heartbeat=15&connection_timeout=2", {})
    assert "s3cret" not in target.safe_url and "worker:**@rabbit" in target.safe_url
    assert "heartbeat=15" in target.url and target.connect_timeout == 2.0
    assert redact("amqp://a:b@c//") == "amqp://a:**@c//"
    broker = AmqpBroker("amqp://worker:s3cret@rabbit/prod")
    assert "s3cret" not in repr(broker)


def test_tls_options_need_amqps() -> None:
    with pytest.raises(ImproperlyConfigured, match="amqps://"):
        parse_target("amqp://rabbit//", {}, {"ca_certs": "/x.pem"})
    with pytest.raises(ImproperlyConfigured, match="broker_use_ssl"):
        parse_target("amqps://rabbit//", {}, {"ca_cert": "/x.pem"})


def test_options_are_checked() -> None:
    with pytest.raises(ImproperlyConfigured, match="quorum"):
        AmqpBroker("amqp://rabbit//", transport_options={"queue_type": "stream"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        AmqpBroker("amqp://rabbit//", transport_options={"queue_typ": "quorum"})
    [warning] = [w for w in caught if w.category is UnknownSettingWarning]
    assert "did you mean 'queue_type'?" in str(warning.message)


def test_the_app_builds_the_engine_from_the_url_without_connecting() -> None:
    app = Celery("t", broker="amqp://u:p@nowhere.invalid//", broker_use_ssl=None)
    try:
        assert isinstance(app.broker, AmqpBroker)
        assert app.broker.supports_key_value is False
    finally:
        app.close()


def test_the_heartbeat_and_connection_timeout_settings_reach_the_engine() -> None:
    app = Celery(
        "t", broker="amqp://u:p@nowhere.invalid//", broker_heartbeat=30,
        broker_connection_timeout=7,
    )  # fmt: skip
    try:
        target = app.broker.target
        assert "heartbeat=30" in target.url and target.connect_timeout == 7.0
    finally:
        app.close()
    app = Celery("t", broker="amqp://u:p@nowhere.invalid//?heartbeat=5", broker_heartbeat=30)
    try:
        assert "heartbeat=5" in app.broker.target.url  # the URL says more precisely
    finally:
        app.close()


@pytest.mark.parametrize("delay", [0.001, 0.5, 1.0, 90.0, 3 * 86400.0, t.MAX_DELAY])
def test_a_delay_routes_through_the_levels_of_its_bits(delay: float) -> None:
    names = t.Names("ns")
    units = t.delay_units(delay)
    assert units * t.UNIT_MS / 1000 >= delay - 1e-9, "never early"
    assert units * t.UNIT_MS / 1000 < delay + t.UNIT_MS / 1000 + 1e-9
    exchange, key = names.delay_route(units, "celery")
    words = key.split(".")
    assert words[t.LEVELS :] == ["celery"] and len(key) <= 255
    bits = [level for level in range(t.LEVELS) if words[t.LEVELS - 1 - level] == "1"]
    assert sum(t.UNIT_MS * 2**level for level in bits) == units * t.UNIT_MS
    assert exchange == names.delay_exchange(max(bits))
    # Each shared level's binding picks exactly the messages whose bit is set, any queue's.
    for level in range(t.LEVELS):
        pattern = _regex(t.level_queue_binding(level))
        assert bool(re.fullmatch(pattern, key)) == (level in bits)
        assert bool(re.fullmatch(pattern, key.replace("celery", "other.q"))) == (level in bits)
    # The next-exchange binding takes the rest; the last step reads the queue back.
    for level in range(t.LEVELS):
        assert bool(re.fullmatch(_regex(names.level_binding(level)[1]), key)) != (level in bits)
    assert t.delayed_queue_of(key) == "celery"
    assert t.delayed_queue_of(names.delay_route(units, "a.b.c")[1]) == "a.b.c"
    assert re.fullmatch(_regex(t.deliver_binding("celery")), key)


def _regex(binding: str) -> str:
    """A topic binding key as a regular expression (``*`` one word, ``#`` any words)."""
    words = [r"[^.]+" if w == "*" else r".*" if w == "#" else re.escape(w)
             for w in binding.split(".")]  # fmt: skip
    return r"\.".join(words).replace(r"\..*", r"(\..*)?")


def test_level_names_cannot_be_an_earlier_per_queue_level_of_any_queue() -> None:
    names, old = t.Names("ns"), t.OldLayout(t.Names("ns"))
    assert names.delay_queue(3) == "ns.delay-level.3"
    assert names.delay_exchange(3) == "ns.delay-bit.3" and names.delay_exchange(-1) == names.deliver
    assert old.queue("level", 3) == "ns.delay.level.3" != names.delay_queue(3)
    assert not names.delay_queue(3).startswith("ns.delay.")


def test_delays_past_the_levels_and_bad_queue_names_are_refused() -> None:
    with pytest.raises(ValueError, match="longer than"):
        t.delay_units(t.MAX_DELAY + 1)
    for bad in ("", "a*b", "a#", "x" * 200):
        with pytest.raises(ValueError, match="queue name"):
            t.check_queue_name(bad)


def test_queue_types_fall_back_to_the_declared_type_and_the_server_for_delays() -> None:
    types = QueueTypes("classic", missing="quorum", known=frozenset({"celery"}))
    assert types.of("celery") == "classic" and types.of("routed") == "quorum"
    assert QueueTypes("quorum", known=frozenset({"a"})).of("b") == "quorum"  # unset: declared
    # The shared delay queues: quorum where the server dead-letters at least once from them
    assert types.delays_on((3, 10, 8)) == "quorum" and types.delays_on((4, 0)) == "quorum"
    assert types.delays_on((3, 9, 29)) == "classic" and types.delays_on(None) == "classic"
    assert QueueTypes("quorum", delay="classic").delays_on((3, 13)) == "classic"
    assert QueueTypes(delay="quorum").delays_on((3, 8)) == "quorum"  # as told: it may fail


@pytest.mark.parametrize(
    ("announced", "version"),
    [("3.10.8", (3, 10, 8)), (b"3.13.7", (3, 13, 7)), ("4.0.0-rc.1", (4, 0, 0)),
     ("3.9", (3, 9)), ("", None), (None, None), ("unknown", None)],
)  # fmt: skip
def test_the_server_version_is_read_from_its_connection_properties(
    announced: object, version: tuple[int, ...] | None
) -> None:
    assert server_version({"version": announced}) == version
    with pytest.raises(ImproperlyConfigured, match=r"task_create_missing_queue_type .* 'stream'"):
        QueueTypes(missing="stream")


def test_priorities_only_on_classic_queues() -> None:
    broker = AmqpBroker("amqp://rabbit//", known_queues={"celery"}, missing_queue_type="quorum")
    assert broker.publisher.priorities_on("celery") and not broker.publisher.priorities_on("x")


def test_login_method_chooses_the_sasl_mechanism(tmp_path: Path) -> None:
    assert "auth=plain" in parse_target("amqp://u:p@rabbit//", {}, login_method="plain").url
    assert "auth=" not in parse_target("amqp://u:p@rabbit//", {}).url
    # EXTERNAL: the client certificate is the login
    client = trustme.CA().issue_cert("client.example")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    cert = {"certfile": str(tmp_path / "client.pem")}
    external = parse_target("amqps://rabbit//", {}, cert, login_method="EXTERNAL")
    assert "auth=external" in external.url
    with pytest.raises(ImproperlyConfigured, match="TLS client certificate: use an amqps://"):
        parse_target("amqp://rabbit//", {}, login_method="EXTERNAL")
    with pytest.raises(ImproperlyConfigured, match=r"'AMQPLAIN' is not available.*'PLAIN'"):
        parse_target("amqp://rabbit//", {}, login_method="AMQPLAIN")
    with pytest.raises(ImproperlyConfigured, match="'CRAM-MD5', a SASL mechanism"):
        parse_target("amqp://rabbit//", {}, login_method="CRAM-MD5")
