"""Celery 3's broker URL parts (``broker_host``, ``broker_user``, ...) and the Redis
result store's ``redis_host``/``redis_port``/``redis_db`` compose the URLs celeriac
connects to, as kombu's Connection and Celery's Redis store do."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.urls import broker_url, result_url


def conf(**settings: Any) -> Any:
    return Celery("parts", set_as_current=False, **settings).conf


@pytest.mark.parametrize(
    ("settings", "url"),
    [
        ({}, None),  # nothing set: celeriac's default (embedded Redis or memory://)
        ({"broker_host": "rabbit"}, "rabbit"),  # a bare host with no parts: kept as given
        ({"broker_host": "rabbit", "broker_user": "u"}, "amqp://u@rabbit"),
        (
            {"broker_host": "rabbit", "broker_user": "u", "broker_password": "p/w",
             "broker_port": 5673, "broker_vhost": "/"},
            "amqp://u:p%2Fw@rabbit:5673/%2F",
        ),
        ({"broker_transport": "redis", "broker_vhost": "3"}, "redis://localhost/3"),
        ({"broker_transport": "redis", "broker_vhost": "/4", "broker_port": 6380},
         "redis://localhost:6380/4"),
        ({"broker_transport": "memory", "broker_host": "x"}, "memory://"),
        # broker_host may be a whole URL; the parts fill only what it leaves out
        ({"broker_host": "amqp://a:b@h/v", "broker_user": "u", "broker_port": 1},
         "amqp://a:b@h:1/v"),
    ],
)  # fmt: skip
def test_the_broker_url_is_composed_from_its_parts(settings: dict[str, Any], url: str) -> None:
    assert broker_url(conf(**settings)) == url


def test_broker_url_wins_over_broker_host_and_its_own_parts_win_over_the_others() -> None:
    c = conf(
        broker_url="amqp://me:secret@mq:5672/prod", broker_host="elsewhere",
        broker_user="other", broker_password="x", broker_port=1, broker_vhost="dev",
    )  # fmt: skip
    assert broker_url(c) == "amqp://me:secret@mq:5672/prod"
    # What the URL leaves out is filled in from the parts
    assert broker_url(conf(broker_url="amqp://mq", broker_user="u", broker_vhost="v")) == (
        "amqp://u@mq/v"
    )


def test_broker_transport_names_the_scheme_even_over_the_urls() -> None:
    assert broker_url(conf(broker_url="amqp://h:6379/2", broker_transport="redis")) == (
        "redis://h:6379/2"
    )


def test_a_url_with_no_parts_set_is_returned_exactly() -> None:
    url = "sentinel://h1:26379;sentinel://h2:26379?master_name=m"
    assert broker_url(conf(broker_url=url)) == url


@pytest.mark.parametrize(
    ("settings", "backend", "url"),
    [
        ({}, "redis", "redis://localhost:6379/0"),
        ({"redis_host": "r", "redis_port": 6380, "redis_db": 2}, "redis", "redis://r:6380/2"),
        ({"redis_host": "r"}, "rediss", "rediss://r:6379/0"),
        # a URL without a host or port takes them from the settings; its db is its path
        ({"redis_host": "r", "redis_db": 5}, "redis://:pw@/1", "redis://:pw@r:6379/1"),
        ({"redis_host": "r"}, "redis://h:1/1", "redis://h:1/1"),
        ({}, "redis://h/1", "redis://h/1"),
        ({"redis_host": "r"}, "rpc://", "rpc://"),
        ({"redis_host": "r"}, None, None),
    ],
)  # fmt: skip
def test_the_redis_result_url_is_composed_from_redis_settings(
    settings: dict[str, Any], backend: str | None, url: str | None
) -> None:
    assert result_url(conf(**settings), backend) == url
