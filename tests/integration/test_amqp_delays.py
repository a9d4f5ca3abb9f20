"""The delay queues on a real RabbitMQ: 32 levels shared by every queue of a namespace,
quorum by default on a server that dead-letters from them at least once, and a vhost that
still holds the per-queue delay queues of earlier versions (the upgrade)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from urllib.parse import unquote, urlsplit

import aiormq
import pytest
from aiormq import spec

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp import topology as t
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import BrokerError
from celeriac.testing.contracts.broker_support import EARLY
from tests.conftest import rabbitmqctl


def _vhost(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path[1:])


def _queues(amqp_url: str, prefix: str) -> dict[str, tuple[str, str]]:
    """Each queue of the vhost whose name starts with ``prefix``: (type, arguments)."""
    out = rabbitmqctl("list_queues", "-q", "-p", _vhost(amqp_url), "name", "type", "arguments",
                      "--no-table-headers")  # fmt: skip
    rows = (line.split(None, 2) for line in out.splitlines() if line.strip())
    return {row[0]: (row[1], row[2]) for row in rows if row[0].startswith(prefix)}


def _message(queue: str, name: str, delay: float | None = None) -> OutboundMessage:
    return OutboundMessage(queue, name.encode(), name, delay=delay)


@pytest.fixture
def brokers(amqp_url: str, amqp_namespace: str) -> Iterator[list[AmqpBroker]]:
    made: list[AmqpBroker] = []
    yield made
    for broker in made:
        broker.close()


def _broker(made: list[AmqpBroker], url: str, namespace: str, **kw: object) -> AmqpBroker:
    broker = AmqpBroker(url, transport_options={"namespace": namespace}, **kw)  # type: ignore[arg-type]
    made.append(broker)
    return broker


async def _arrivals(broker: AmqpBroker, queue: str, count: int) -> list[tuple[str, float]]:
    """(message id, when) of the first ``count`` messages fetched from ``queue`` (acked),
    then of any more within a second: a copy routed twice would come with its original."""
    got: list[tuple[str, float]] = []
    deadline = time.time() + 30
    while len(got) < count and time.time() < deadline:
        for delivery in await broker.fetch([queue], 10, deadline - time.time()):
            got.append((delivery.message_id, time.time()))
            assert await delivery.ack() is True
    for delivery in await broker.fetch([queue], 10, 1.0):
        got.append((delivery.message_id, time.time()))
    return got


def test_two_queues_share_the_quorum_levels_and_each_gets_its_own_on_time(
    amqp_url: str, amqp_namespace: str, brokers: list[AmqpBroker]
) -> None:
    broker = _broker(brokers, amqp_url, amqp_namespace)
    assert broker._run(broker.link.server_version()) >= (3, 10), "needs RabbitMQ 3.10+"
    first, second = f"first-{uuid.uuid4().hex[:6]}", f"second-{uuid.uuid4().hex[:6]}"
    # Given delayed messages for two queues, due at different moments
    start = time.time()
    broker.publish_many(
        [
            _message(first, "a", 1.5),
            _message(second, "b", 2.5),
            _message(first, "later", 60.0),
            _message(second, "later", 60.0),
        ]
    )
    # Then the namespace has one set of 32 level queues, quorum with at-least-once
    # dead-lettering, and no delay queue of either queue's own
    levels = _queues(amqp_url, f"{amqp_namespace}.delay")
    assert sorted(levels) == sorted(f"{amqp_namespace}.delay-level.{k}" for k in range(t.LEVELS))
    assert {kind for kind, _ in levels.values()} == {"quorum"}
    assert all("at-least-once" in arguments for _, arguments in levels.values())
    # When they fall due, each arrives in its own queue, once, not before its time
    got_first = asyncio.run(_arrivals(broker, first, 1))
    got_second = asyncio.run(_arrivals(broker, second, 1))
    assert [name for name, _ in got_first] == ["a"] and [name for name, _ in got_second] == ["b"]
    assert got_first[0][1] >= start + 1.5 - EARLY and got_second[0][1] >= start + 2.5 - EARLY
    # And every queue's delayed messages are counted together, as documented
    assert AmqpBroker.delays_counted_per_queue is False
    assert broker.delayed_count(first) == broker.delayed_count(second) == 2
    assert broker.purge(second) == 1 and broker.purge(first) == 1


def test_a_purge_takes_its_queues_delayed_messages_out_of_the_shared_levels(
    amqp_url: str, amqp_namespace: str, brokers: list[AmqpBroker]
) -> None:
    broker = _broker(brokers, amqp_url, amqp_namespace, delay_queue_type="classic")
    kept, purged = f"kept-{uuid.uuid4().hex[:6]}", f"purged-{uuid.uuid4().hex[:6]}"
    # Given both queues' messages waiting in the same levels (several levels each)
    start = time.time()
    broker.publish_many(
        [_message(purged, f"p{i}", 2.0 + i * 0.37) for i in range(40)]
        + [_message(kept, f"k{i}", 1.0 + i * 0.01) for i in range(5)]
    )
    assert broker.delayed_count(kept) + broker.queue_length(kept) == 45  # (any due: ready)
    # When one queue is purged, its 40 go and the other's 5 stay, counted
    assert broker.purge(purged) == 40
    assert broker.delayed_count(kept) + broker.queue_length(kept) == 5
    # Then the kept ones still arrive when due, and nothing of the purged queue does
    got = asyncio.run(_arrivals(broker, kept, 5))
    assert sorted(name for name, _ in got) == [f"k{i}" for i in range(5)]
    assert min(when for _, when in got) >= start + 1.0 - EARLY
    assert broker.queue_length(purged) == 0 and broker.delayed_count(purged) == 0


def test_delay_queues_declared_classic_before_stay_classic_with_one_warning(
    amqp_url: str, amqp_namespace: str, brokers: list[AmqpBroker],
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    queue = f"q-{uuid.uuid4().hex[:6]}"
    # Given delay queues declared classic (say, on an older RabbitMQ)
    _broker(brokers, amqp_url, amqp_namespace, delay_queue_type="classic").publish_many(
        [_message(queue, "old", 60.0)]
    )
    # When a broker that leaves their type to the server publishes a delayed message
    with caplog.at_level(logging.WARNING, logger="celeriac.brokers.amqp"):
        default = _broker(brokers, amqp_url, amqp_namespace)
        default.publish_many([_message(queue, "new", 60.0), _message(queue, "again", 60.0)])
    # Then it uses them as they are, saying once what that risks and how to change it
    assert default.delayed_count(queue) == 3
    warned = [r.getMessage() for r in caplog.records if "exist as classic" in r.getMessage()]
    assert len(warned) == 1 and "lose a countdown" in warned[0] and "delete them" in warned[0]
    kinds = {kind for kind, _ in _queues(amqp_url, f"{amqp_namespace}.delay").values()}
    assert kinds == {"classic"}
    # And a broker told to use quorum ones is refused, naming the mismatch
    quorum = _broker(brokers, amqp_url, amqp_namespace, delay_queue_type="quorum")
    with pytest.raises(BrokerError, match="declared before with other arguments"):
        quorum.publish_many([_message(queue, "refused", 60.0)])
    assert default.purge(queue) == 3


# -- the upgrade from per-queue delay queues ------------------------------------------------
def _bits(units: int) -> str:
    return ".".join("1" if units >> k & 1 else "0" for k in range(t.LEVELS - 1, -1, -1))


async def _old_layout(url: str, namespace: str, queue: str) -> None:
    """The topology earlier versions declared for ``queue``'s delays: exchanges
    ``N.delay.K`` and 32 classic queues ``N.delay.Q.K`` of its own."""
    old = t.OldLayout(t.Names(namespace))
    deliver = f"{namespace}.delay.deliver"

    def exchange(level: int) -> str:
        return deliver if level < 0 else old.exchange(level)

    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel()
        await channel.queue_declare(queue, durable=True, arguments={"x-max-priority": 9})
        for level in range(-1, t.LEVELS):
            await channel.exchange_declare(exchange(level), exchange_type="topic", durable=True)
        for level in range(t.LEVELS):
            prefix = "*." * (t.LEVELS - 1 - level)
            await channel.exchange_bind(exchange(level - 1), exchange(level), f"{prefix}0.#")
            name = old.queue(queue, level)
            arguments = {"x-message-ttl": t.UNIT_MS * 2**level,
                         "x-dead-letter-exchange": exchange(level - 1)}  # fmt: skip
            await channel.queue_declare(name, durable=True, arguments=arguments)
            await channel.queue_bind(name, exchange(level), f"{prefix}1.{'*.' * level}{queue}")
        await channel.queue_bind(queue, deliver, f"{'*.' * t.LEVELS}{queue}")
    finally:
        await connection.close()


async def _publish_old(url: str, namespace: str, queue: str, name: str, delay: float) -> None:
    """A delayed message as an earlier version publishes it, into exchange ``N.delay.K``."""
    units = t.delay_units(delay)
    connection = await aiormq.connect(url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        headers = {t.H_ID: name, t.H_DELIVERIES: 0}
        await channel.basic_publish(
            name.encode(), exchange=f"{namespace}.delay.{units.bit_length() - 1}",
            routing_key=f"{_bits(units)}.{queue}", mandatory=True,
            properties=spec.Basic.Properties(delivery_mode=2, headers=headers,
                                             correlation_id=name, message_id=name),
        )  # fmt: skip
    finally:
        await connection.close()


def test_a_vhost_with_per_queue_delay_queues_delivers_old_and_new_messages_once(
    amqp_url: str, amqp_namespace: str, brokers: list[AmqpBroker]
) -> None:
    queue = f"up-{uuid.uuid4().hex[:6]}"
    old_names = [t.OldLayout(t.Names(amqp_namespace)).queue(queue, k) for k in range(t.LEVELS)]
    # Given the per-queue layout of an earlier version, holding a message due in 6 s
    start = time.time()
    asyncio.run(_old_layout(amqp_url, amqp_namespace, queue))
    asyncio.run(_publish_old(amqp_url, amqp_namespace, queue, "old", 6.0))
    # When this version publishes a delayed message to the same queue
    broker = _broker(brokers, amqp_url, amqp_namespace)
    broker.publish_many([_message(queue, "new", 3.0)])
    # And a process of the earlier version, still running, publishes one more
    asyncio.run(_publish_old(amqp_url, amqp_namespace, queue, "old-again", 3.0))
    # Then the old queues count until they drain, and are left as they were
    assert broker.delayed_count(queue) + broker.queue_length(queue) == 3
    assert set(old_names) <= set(_queues(amqp_url, f"{amqp_namespace}.delay."))
    # And each message arrives exactly once, when due
    got = asyncio.run(_arrivals(broker, queue, 3))
    assert sorted(name for name, _ in got) == ["new", "old", "old-again"]
    assert dict(got)["old"] >= start + 6.0 - EARLY
    assert broker.delayed_count(queue) == 0

    # And the drained old queues can be deleted as the documentation says: if empty
    async def delete_old() -> None:
        connection = await aiormq.connect(amqp_url)
        try:
            channel = await connection.channel()
            for name in old_names:
                await channel.queue_delete(name, if_empty=True)
            for level in range(t.LEVELS):
                await channel.exchange_delete(f"{amqp_namespace}.delay.{level}")
        finally:
            await connection.close()

    asyncio.run(delete_old())
    assert not set(old_names) & set(_queues(amqp_url, f"{amqp_namespace}.delay."))
    broker.publish_many([_message(queue, "after", 0.2)])
    got = asyncio.run(_arrivals(broker, queue, 1))
    assert [name for name, _ in got] == ["after"]
