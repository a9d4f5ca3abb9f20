"""A busy worker on RabbitMQ fetches for the slots whose acks are on their way: the next
messages come pushed by RabbitMQ once those acks are written (its consumer's prefetch),
not taken one ``basic.get`` round trip at a time past that prefetch."""

from __future__ import annotations

import threading
import uuid
from typing import Any

from celeriac import Celery
from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import Delivery
from celeriac.testing import start_worker

TASKS = 300


def test_a_busy_worker_gets_its_next_messages_pushed_not_by_basic_get(
    amqp_url: str, amqp_namespace: str
) -> None:
    queue = f"window-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {
        "broker_transport_options": {"namespace": amqp_namespace},
        "task_default_queue": queue,
        "task_ignore_result": True,
    }
    app = Celery("window", broker=amqp_url, **settings)
    ran: list[int] = []
    all_ran = threading.Event()

    @app.task
    def noop(n: int) -> None:
        ran.append(n)
        if len(ran) == TASKS:
            all_ran.set()

    broker = app.broker
    assert isinstance(broker, AmqpBroker)
    gets = 0
    take = broker.consumption._take

    async def counted(names: list[str], limit: int) -> list[Delivery]:
        nonlocal gets
        gets += 1
        return await take(names, limit)

    broker.consumption._take = counted  # type: ignore[method-assign]
    # Queued beforehand, from another connection: the worker starts with a full queue.
    sender = Celery("window", broker=amqp_url, set_as_current=False, **settings)
    for n in range(TASKS):
        sender.send_task(str(noop.name), (n,))
    sender.broker.flush()
    sender.close()
    with start_worker(app, pool="threads", concurrency=4):
        assert all_ran.wait(60), f"{len(ran)} of {TASKS} ran"
    assert sorted(ran) == list(range(TASKS))
    assert gets == 0  # every fetch was answered by what RabbitMQ pushed
    broker.close()
