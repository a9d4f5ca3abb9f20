"""Pipelined publisher confirms on RabbitMQ: a publish returns before its confirm, and
nothing is lost for it: a process that exits waits for its confirms, a message RabbitMQ
did not store is raised from the next publish and from ``flush()``, and
``confirm_publish=True`` still raises at the call itself."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import aiormq
import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import BrokerError, ImproperlyConfigured
from tests.integration.workers import ROOT

MakeBroker = Callable[..., AmqpBroker]


@pytest.fixture
def make_broker(amqp_url: str, amqp_namespace: str) -> Iterator[MakeBroker]:
    made: list[AmqpBroker] = []

    def make(**options: Any) -> AmqpBroker:
        broker = AmqpBroker(amqp_url, transport_options={"namespace": amqp_namespace, **options})
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


def new_queue() -> str:
    return f"pipelined-{uuid.uuid4().hex[:10]}"


def delete_behind_its_back(amqp_url: str, queue: str) -> None:
    """Delete ``queue`` from another connection: the broker still thinks it declared it."""

    async def delete() -> None:
        connection = await aiormq.connect(amqp_url)
        channel = await connection.channel()
        await channel.queue_delete(queue)
        await connection.close()

    asyncio.run(delete())


def test_a_producer_that_exits_at_once_still_has_every_call_stored(
    amqp_url: str, amqp_namespace: str, make_broker: MakeBroker
) -> None:
    # Given a script that sends 2,000 tasks one call each and ends without flush or close
    queue = new_queue()
    script = textwrap.dedent(
        f"""
        from celeriac import Celery
        app = Celery("producer", broker={amqp_url!r}, set_as_current=False,
                     broker_transport_options={{"namespace": {amqp_namespace!r}}})
        for n in range(2000):
            app.send_task("tasks.add", (n, n), queue={queue!r})
        """
    )
    # When it runs to its end
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=120)
    # Then RabbitMQ holds all 2,000: the exit waited for their confirms
    assert make_broker().queue_length(queue) == 2000


def test_a_message_rabbitmq_did_not_store_is_raised_by_flush_and_by_the_next_publish(
    amqp_url: str, make_broker: MakeBroker
) -> None:
    broker = make_broker()
    queue, other = new_queue(), new_queue()
    broker.publish(OutboundMessage(queue, b"first", "kept-1"))
    broker.publish_many([OutboundMessage(other, b"x", "other-0")])  # declares ``other``
    broker.flush()
    assert broker.queue_length(queue) == 1
    # Given the queue deleted behind the broker's back: the next publish to it is returned
    delete_behind_its_back(amqp_url, queue)
    broker.publish(OutboundMessage(queue, b"second", "lost-2"))  # returns before the confirm
    # Then flush raises, naming the message that was not stored
    with pytest.raises(BrokerError, match=r"lost-2.*unroutable"):
        broker.flush()
    broker.flush()  # reported once

    # And a failure not flushed is raised by the next publish, which sends nothing itself
    broker.publish(OutboundMessage(queue, b"third", "kept-3"))  # declares the queue again
    broker.flush()
    delete_behind_its_back(amqp_url, queue)
    broker.publish(OutboundMessage(queue, b"fourth", "lost-4"))
    # A waited publish on the same channel: RabbitMQ confirms in order, so lost-4's
    # return has arrived once this returns.
    broker.publish_many([OutboundMessage(other, b"x", "other-1")])
    with pytest.raises(BrokerError, match=r"lost-4.*did not send its own message"):
        broker.publish(OutboundMessage(other, b"x", "not-sent"))
    broker.publish(OutboundMessage(other, b"x", "sent"))
    broker.flush()
    assert broker.queue_length(other) == 3  # other-0, other-1, sent


def test_confirm_publish_true_raises_at_the_call(amqp_url: str, make_broker: MakeBroker) -> None:
    broker = make_broker(confirm_publish=True)
    queue = new_queue()
    broker.publish(OutboundMessage(queue, b"first", "kept-1"))
    assert broker.queue_length(queue) == 1  # stored when the call returned
    delete_behind_its_back(amqp_url, queue)
    with pytest.raises(BrokerError, match=r"lost-2.*unroutable"):
        broker.publish(OutboundMessage(queue, b"second", "lost-2"))


def test_a_full_window_waits_for_its_confirms(make_broker: MakeBroker) -> None:
    broker = make_broker(confirm_window=5)
    queue = new_queue()
    for n in range(23):
        broker.publish(OutboundMessage(queue, b"x", f"id-{n}"))
        assert broker.pipeline.unconfirmed <= 5
    broker.flush()
    assert broker.queue_length(queue) == 23


def test_confirm_window_must_be_a_positive_count(make_broker: MakeBroker) -> None:
    with pytest.raises(ImproperlyConfigured, match=r"confirm_window.*positive whole number"):
        make_broker(confirm_window=0)


def test_threads_publishing_at_once_share_the_window(make_broker: MakeBroker) -> None:
    broker = make_broker(confirm_window=10)
    queue = new_queue()

    def publish(start: int) -> None:
        for n in range(start, start + 300):
            broker.publish(OutboundMessage(queue, b"x", f"id-{n}"))

    threads = [threading.Thread(target=publish, args=(k * 300,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    broker.flush()
    assert broker.pipeline.unconfirmed == 0
    assert broker.queue_length(queue) == 1200
