"""``task_queue_max_priority`` and ``task_default_delivery_mode`` on a real RabbitMQ: the
queues celeriac declares carry the ``x-max-priority`` asked for (or none), and messages
are published persistent or transient as the setting and the call option say."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from celeriac import Celery
from tests.conftest import rabbitmqctl


@pytest.fixture
def apps(amqp_url: str, amqp_namespace: str) -> Iterator[Callable[..., Celery]]:
    made: list[Celery] = []

    def make(**settings: Any) -> Celery:
        app = Celery(
            "queues", broker=amqp_url, set_as_current=False,
            task_default_queue=f"q-{uuid.uuid4().hex[:8]}",
            broker_transport_options={"namespace": amqp_namespace}, **settings,
        )  # fmt: skip
        made.append(app)
        return app

    yield make
    for app in made:
        app.broker.purge(app.conf.task_default_queue)
        app.close()


def _queue(amqp_url: str, name: str) -> list[str]:
    """``[arguments, messages_persistent]`` of one queue, as rabbitmqctl shows them."""
    vhost = unquote(urlsplit(amqp_url).path[1:])
    out = rabbitmqctl(
        "list_queues", "-q", "-p", vhost, "name", "arguments", "messages_persistent",
        "--no-table-headers",
    )  # fmt: skip
    [row] = [line.split(None, 1)[1] for line in out.splitlines() if line.split()[:1] == [name]]
    return row.rsplit(None, 1)


def _fetched_priorities(app: Celery, count: int = 3) -> list[int]:
    """The priorities of the next ``count`` messages, in the order they are delivered (a
    fetch returns what has arrived: under load, the first may bring one message)."""

    async def fetch() -> list[int]:
        deadline = asyncio.get_running_loop().time() + 10
        fetched: list[int] = []
        while len(fetched) < count and asyncio.get_running_loop().time() < deadline:
            queue = app.conf.task_default_queue
            deliveries = await app.broker.fetch([queue], count - len(fetched), timeout=2)
            for delivery in deliveries:
                await delivery.ack()
            fetched += [d.priority for d in deliveries]
        return fetched

    return asyncio.run(fetch())


def test_the_queues_take_the_max_priority_set(amqp_url: str, apps: Any) -> None:
    app = apps(task_queue_max_priority=5)
    app.send_task("proj.add", (1, 2))
    arguments, _ = _queue(amqp_url, app.conf.task_default_queue)
    assert "{x-max-priority,5}" in arguments.replace('"', "").replace(" ", "")


def test_without_a_max_priority_a_queue_is_first_in_first_out(amqp_url: str, apps: Any) -> None:
    app = apps(task_queue_max_priority=None)
    for priority in (0, 5, 9):
        app.send_task("proj.add", (1, 2), priority=priority)
    app.broker.flush()  # all three held before the first fetch
    arguments, _ = _queue(amqp_url, app.conf.task_default_queue)
    assert "x-max-priority" not in arguments
    assert _fetched_priorities(app) == [0, 5, 9]
    # The default (9 levels) serves the highest first
    ranked = apps()
    for priority in (0, 5, 9):
        ranked.send_task("proj.add", (1, 2), priority=priority)
    ranked.broker.flush()
    assert _fetched_priorities(ranked) == [9, 5, 0]


def test_transient_messages_are_not_persisted(amqp_url: str, apps: Any) -> None:
    app = apps(task_default_delivery_mode="transient")
    app.send_task("proj.add", (1, 2))
    app.send_task("proj.add", (1, 2))
    app.broker.flush()
    queue = app.conf.task_default_queue
    assert _queue(amqp_url, queue)[1] == "0"  # two messages, neither on disk
    # The call option wins over the setting
    app.send_task("proj.add", (1, 2), delivery_mode="persistent")
    app.send_task("proj.add", (1, 2), delivery_mode=2)
    app.broker.flush()
    assert _queue(amqp_url, queue)[1] == "2"
    assert app.broker.queue_length(queue) == 4
