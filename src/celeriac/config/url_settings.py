"""The settings that make up the broker and result store addresses besides their URLs:
the read and write broker URLs, Celery 3's broker URL parts and the Redis store's host,
port and database. Declared here, added to ``settings.SETTINGS`` unchanged.

Pure data; imports nothing from celeriac. Rows are ``(name, default, types, doc, extra)``.
"""

from __future__ import annotations

from typing import Any

Row = tuple[str, Any, tuple[type, ...], str, dict[str, Any]]

BROKER_ADDRESS: list[Row] = [
    (
        "broker_read_url", None, (str,),
        "The broker a worker consumes from (fetch, ack, remote control, revocations); "
        "unset: the broker URL. `CELERY_BROKER_READ_URL` in the environment comes first.",
        {"url_list": True},
    ),
    (
        "broker_write_url", None, (str,),
        "The broker calls, retries, results sent back (`rpc://`) and events are "
        "published to; unset: the broker URL. `CELERY_BROKER_WRITE_URL` comes first.",
        {"url_list": True},
    ),
    # Celery 3's broker URL in parts: composed into a URL as kombu does (app/urls.py).
    (
        "broker_host", None, (str,),
        "With `broker_url` unset: the broker's host (or a whole URL); the parts below "
        "fill in what it leaves out.",
        {},
    ),
    ("broker_port", None, (int,), "Broker port, when the URL has none (transport's default).", {}),
    ("broker_user", None, (str,), "Broker user, when the URL has none (AMQP: guest).", {}),
    ("broker_password", None, (str,), "Broker password, when the URL has none.", {}),
    (
        "broker_vhost", None, (str,),
        "RabbitMQ vhost (Redis: database number), when the URL has none.", {},
    ),
    (
        "broker_transport", None, (str,),
        "Broker scheme: `amqp`, `pyamqp`, `redis`, `rediss`, `memory`, ...; set, it "
        "names the scheme even over `broker_url`'s. With only parts set: `amqp`.",
        {},
    ),
]  # fmt: skip

REDIS_ADDRESS: list[Row] = [
    (
        "redis_host", None, (str,),
        "Host of the store when `result_backend = 'redis'` (no URL), or of a `redis://` "
        "URL that names none; unset, localhost.",
        {},
    ),
    ("redis_port", None, (int,), "Port, likewise (unset: 6379).", {}),
    ("redis_db", None, (int,), "Database number when `result_backend = 'redis'` (unset: 0).", {}),
]  # fmt: skip
