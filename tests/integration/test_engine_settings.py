"""Settings that reach the engines: ``task_default_queue_type`` declares quorum queues on
RabbitMQ, ``confirm_publish`` is refused unless True, and the ``redis_*`` family reaches
the Redis result store's connections (real RabbitMQ and Redis)."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import redis

from celeriac import Celery
from celeriac.exceptions import BackendConnectionError, ImproperlyConfigured
from tests.conftest import rabbitmqctl


@pytest.fixture
def redis_app(redis_url: str, redis_prefix: str) -> Iterator[Any]:
    apps: list[Celery] = []

    def make(**settings: Any) -> Celery:
        app = Celery(
            "engine-settings", broker="memory://", backend=redis_url, set_as_current=False,
            result_backend_transport_options={"key_prefix": redis_prefix}, **settings,
        )  # fmt: skip
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def _queue_types(amqp_url: str) -> dict[str, str]:
    vhost = unquote(urlsplit(amqp_url).path[1:])
    out = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "type", "--no-table-headers")
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_task_default_queue_type_quorum_declares_quorum_queues(
    amqp_url: str, amqp_namespace: str
) -> None:
    # Given an app on RabbitMQ whose queues are to be quorum queues, as Celery 5.5+ declares
    queue = f"quorum-{uuid.uuid4().hex[:8]}"
    app = Celery(
        "quorum", broker=amqp_url, set_as_current=False, task_default_queue=queue,
        task_default_queue_type="quorum",
        broker_transport_options={"namespace": amqp_namespace},
    )  # fmt: skip
    try:
        # When a task is sent to its default queue
        app.send_task("proj.add", (1, 2))
        # Then the queue is declared with x-queue-type=quorum, and priorities are off
        assert _queue_types(amqp_url)[queue] == "quorum"
        assert app.broker.queue_type == "quorum" and not app.broker.supports_priorities
        assert app.broker.queue_length(queue) == 1
    finally:
        app.broker.purge(queue)
        app.close()


def test_queue_type_setting_and_transport_option_must_agree() -> None:
    app = Celery(
        "x", broker="amqp://guest:guest@127.0.0.1:9//", set_as_current=False,
        task_default_queue_type="quorum", broker_transport_options={"queue_type": "classic"},
    )  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="set one of them only"):
        app.broker  # noqa: B018
    bad = Celery("x", broker="memory://", set_as_current=False, task_default_queue_type="stream")
    with pytest.raises(ImproperlyConfigured, match="'classic' or 'quorum', not 'stream'"):
        bad.broker  # noqa: B018


def test_confirm_publish_true_is_accepted_and_false_is_refused(amqp_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # True: what celeriac does anyway, so no warning
        app = Celery(
            "x", broker=amqp_url, set_as_current=False,
            broker_transport_options={"confirm_publish": True},
        )  # fmt: skip
        assert app.broker.queue_type == "classic"
        app.close()
    app = Celery(
        "x", broker=amqp_url, set_as_current=False,
        broker_transport_options={"confirm_publish": False},
    )  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="always uses publisher confirms"):
        app.broker  # noqa: B018


def test_redis_settings_reach_the_result_stores_connections(redis_app: Any, redis_url: str) -> None:
    # Given the redis_* settings Celery applies to its Redis result backend
    name = f"celeriac-test-{uuid.uuid4().hex[:8]}"
    app = redis_app(
        redis_client_name=name, redis_socket_timeout=7.5, redis_socket_connect_timeout=2.5,
        redis_socket_keepalive=True, redis_max_connections=3, redis_retry_on_timeout=True,
        redis_backend_health_check_interval=11,
    )  # fmt: skip
    # When the result store is used
    app.backend.store_result("task-1", 42, "SUCCESS")
    assert app.AsyncResult("task-1").get(timeout=5) == 42
    # Then its connections carry them: the server sees the client name
    with redis.Redis.from_url(redis_url) as admin:
        assert any(client["name"] == name for client in admin.client_list())
    pool = app.backend._client.connection_pool
    kwargs = pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (7.5, 2.5)
    assert kwargs["socket_keepalive"] is True and kwargs["health_check_interval"] == 11
    assert pool.max_connections == 3


def test_transport_options_win_over_redis_settings(
    redis_app: Any, redis_url: str, redis_prefix: str
) -> None:
    app = redis_app(redis_socket_timeout=7.5)
    app.conf.result_backend_transport_options = {"key_prefix": redis_prefix, "socket_timeout": 9}
    assert app.backend._client.connection_pool.connection_kwargs["socket_timeout"] == 9


def test_redis_password_is_sent_when_the_url_has_none(redis_app: Any) -> None:
    # The test server has no password: a login with one is refused, which shows it was sent
    app = redis_app(redis_username="nobody", redis_password="not-the-password")
    with pytest.raises(BackendConnectionError, match="invalid username-password pair") as caught:
        app.backend.store_result("task-2", 1, "SUCCESS")
    assert "not-the-password" not in str(caught.value)


def test_redis_settings_do_not_touch_other_result_stores() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = Celery(
            "x", broker="memory://", backend="cache+memory://", set_as_current=False,
            redis_socket_timeout=1.0, redis_max_connections=2,
        )  # fmt: skip
        app.backend.store_result("t", 1, "SUCCESS")
        assert app.AsyncResult("t").get(timeout=1) == 1
