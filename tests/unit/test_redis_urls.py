"""Redis URLs and transport options: parsed and checked before any connection is made."""

from __future__ import annotations

from pathlib import Path

import pytest

from celeriac._redis import parse_target, redact
from celeriac.brokers.redis import RedisBroker
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured
from celeriac.results.redis import RedisBackend


def test_every_password_of_a_sentinel_url_is_redacted() -> None:
    url = "sentinel://:pw1@h1:26379;sentinel://user:pw2@h2:26380/3"
    assert redact(url) == "sentinel://:**@h1:26379;sentinel://user:**@h2:26380/3"
    assert redact("redis://:s3cret@host:6379/0") == "redis://:**@host:6379/0"
    assert redact("redis://host:6379/0") == "redis://host:6379/0"


def test_sentinel_urls_give_master_credentials_and_sentinel_options_apart() -> None:
    target = parse_target(
        "sentinel://:masterpw@h1:26379;sentinel://h2:26380/2",
        {"master_name": "mymaster", "sentinel_kwargs": {"password": "sentinelpw"}},
    )
    assert target.sentinels == (("h1", 26379), ("h2", 26380))
    assert (target.master_name, target.db, target.password) == ("mymaster", 2, "masterpw")
    assert target._auth()["sentinel_kwargs"] == {"password": "sentinelpw"}


def test_a_misspelt_transport_option_warns_with_the_closest_name() -> None:
    with pytest.warns(UnknownSettingWarning, match="did you mean 'visibility_timeout'"):
        RedisBroker("redis://127.0.0.1:6379/15", transport_options={"visibilty_timeout": 60})
    with pytest.warns(UnknownSettingWarning, match="did you mean 'listener_keepalive'"):
        RedisBackend("redis://127.0.0.1:6379/15", transport_options={"listener_keepalve": 3})


def test_an_unknown_eviction_policy_value_is_refused() -> None:
    with pytest.raises(ImproperlyConfigured, match="'warn', 'refuse' or 'off'"):
        RedisBroker("redis://127.0.0.1:6379/15", transport_options={"eviction_policy": "yes"})


def test_tls_options_need_a_rediss_url(tmp_path: Path) -> None:
    with pytest.raises(ImproperlyConfigured, match="use a rediss:// URL"):
        parse_target("redis://127.0.0.1:6379/0", {"ssl_ca_certs": "/ca.pem"})
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    parse_target("rediss://127.0.0.1:6379/0", {"ssl_ca_certs": str(ca)})


def test_not_a_redis_url_hides_its_password() -> None:
    with pytest.raises(ImproperlyConfigured) as info:
        parse_target("amqp://user:hunter2@host//")
    assert "hunter2" not in str(info.value) and "is not a Redis URL" in str(info.value)


def test_tls_through_sentinel_is_refused_clearly() -> None:
    with pytest.raises(ImproperlyConfigured, match="not supported yet"):
        parse_target("sentinel://h:26379", {"master_name": "m", "ssl_ca_certs": "/ca.pem"})


def test_every_client_times_out_by_default_and_the_options_change_it() -> None:
    # A server that stops answering must not hang a worker for good: bounded by default,
    client = parse_target("redis://127.0.0.1:6379/15").sync_client()
    try:
        kwargs = client.connection_pool.connection_kwargs
        assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (5.0, 30.0)
    finally:
        client.close()
    # and a transport option wins, None included (wait forever, as redis-py does).
    target = parse_target("redis://h/0", {"socket_timeout": None, "socket_connect_timeout": 1})
    assert dict(target.options) == {"socket_timeout": None, "socket_connect_timeout": 1}


def test_a_socket_file_url_takes_the_redis_settings_without_tcp_keepalive(tmp_path) -> None:
    # redis_socket_keepalive (False by default) reaches every Redis result store; redis-py
    # refuses it for a unix socket, so the embedded Redis (a socket file) must not get it.
    target = parse_target(f"unix://{tmp_path}/redis.sock?db=1", {"socket_keepalive": False})
    assert "socket_keepalive" not in dict(target.options)
    client = target.sync_client()
    client.connection_pool.make_connection()  # redis-py builds the connection: no TypeError
    client.close()
    tcp = parse_target("redis://localhost:6379/0", {"socket_keepalive": True})
    assert dict(tcp.options)["socket_keepalive"] is True
