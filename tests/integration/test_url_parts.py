"""Celery 3's URL parts reach real servers: ``broker_host``/``broker_user``/... build the
broker connection (RabbitMQ and Redis), and ``result_backend = 'redis'`` with
``redis_host``/``redis_port``/``redis_db`` finds the Redis result store."""

from __future__ import annotations

import uuid
from urllib.parse import unquote, urlsplit

import redis

from celeriac import Celery
from tests.conftest import rabbitmqctl


def test_a_rabbitmq_broker_from_its_parts_takes_the_calls(
    amqp_url: str, amqp_namespace: str
) -> None:
    # Given no broker_url, only the parts of the test vhost's URL
    parts = urlsplit(amqp_url)
    queue = f"parts-{uuid.uuid4().hex[:8]}"
    app = Celery(
        "parts", set_as_current=False, task_default_queue=queue,
        broker_host=parts.hostname, broker_port=parts.port, broker_user="guest",
        broker_password="guest", broker_vhost=unquote(parts.path[1:]),
        broker_transport_options={"namespace": amqp_namespace},
    )  # fmt: skip
    try:
        # When a task is sent, then it waits in that vhost's queue
        app.send_task("proj.add", (1, 2))
        app.broker.flush()  # its confirm is in: RabbitMQ holds it
        assert app.broker.queue_length(queue) == 1
        vhost = unquote(parts.path[1:])
        assert queue in rabbitmqctl("list_queues", "-q", "-p", vhost, "name").split()
        assert app.connection_for_write().as_uri().startswith("amqp://guest:**@")
    finally:
        app.broker.purge(queue)
        app.close()


def test_a_redis_broker_and_result_store_from_their_parts(
    redis_url: str, redis_prefix: str
) -> None:
    # Given the test Redis named by parts: broker_transport/host/port/vhost (the db) for the
    # broker, and result_backend='redis' with redis_host/redis_port/redis_db for results
    where = urlsplit(redis_url)
    db = int(where.path.strip("/") or 0)
    app = Celery(
        "parts", set_as_current=False, broker_transport="redis", broker_host=where.hostname,
        broker_port=where.port, broker_vhost=str(db), result_backend="redis",
        redis_host=where.hostname, redis_port=where.port, redis_db=db,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    try:
        # When a call is sent and a result stored
        app.send_task("proj.add", (1, 2), queue=f"{redis_prefix}-q")
        app.backend.store_result("parts-1", 42, "SUCCESS")
        # Then both are in that database of that server
        assert app.broker.queue_length(f"{redis_prefix}-q") == 1
        assert app.AsyncResult("parts-1").get(timeout=5) == 42
        client = redis.Redis.from_url(redis_url)
        assert any(client.scan_iter(match=f"{redis_prefix}*"))
        client.close()
    finally:
        app.close()
