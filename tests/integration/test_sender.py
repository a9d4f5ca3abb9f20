"""Senders: where a task call's built messages go. A sender chosen with
``app.sending_through`` (or ``app.sender``) takes every publish of a call, workflows
included, and the broker sees nothing until it hands them on; on a real Redis."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, states
from celeriac.app.sending import BrokerSender, RetryPolicy, Sender
from celeriac.brokers.base import OutboundMessage
from celeriac.testing import drain


class Outbox(Sender):
    """Holds messages until ``flush()``, as a transactional outbox holds rows until commit."""

    def __init__(self, app: Celery) -> None:
        self.app = app
        self.held: list[OutboundMessage] = []

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        self.held.extend(messages)

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        self.held.extend(messages)

    def flush(self) -> None:
        BrokerSender(self.app.broker).send(self.held, RetryPolicy())
        self.held = []


class Refusing(Sender):
    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        raise RuntimeError("the transaction was rolled back")

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        raise RuntimeError("the transaction was rolled back")


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    options = {"key_prefix": redis_prefix}
    app = Celery(
        "t",
        broker=redis_url,
        backend=redis_url,
        broker_transport_options=options,
        result_backend_transport_options=options,
    )
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def add(app: Celery) -> Any:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    return add


def _ready(app: Celery) -> int:
    return app.broker.queue_length("celery")


def test_a_call_goes_through_the_chosen_sender_with_its_id_known_first(
    app: Celery, add: Any
) -> None:
    outbox = Outbox(app)
    with app.sending_through(outbox):
        result = add.delay(2, 3)
    assert [m.message_id for m in outbox.held] == [result.id]
    assert _ready(app) == 0 and result.state == states.PENDING  # nothing published yet
    add.delay(1, 1)  # outside the block: straight to the broker
    assert _ready(app) == 1
    outbox.flush()
    assert drain(app) == 2
    assert result.get(timeout=5) == 5


def test_group_chain_and_chord_publish_through_the_sender(app: Celery, add: Any) -> None:
    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    outbox = Outbox(app)
    with app.sending_through(outbox):
        grouped = group(add.s(1, 1), add.s(2, 2)).apply_async()
        chained = chain(add.s(1, 2), add.s(3)).apply_async()
        joined = chord([add.s(5, 5), add.s(6, 6)])(total.s())
    sent = {m.message_id for m in outbox.held}
    assert len(outbox.held) == 5 and _ready(app) == 0
    assert {r.id for r in grouped.results} <= sent and chained.parent.id in sent
    outbox.flush()
    while drain(app):  # each step sends the next one (chain, chord body) to the broker
        pass
    assert grouped.get(timeout=5) == [2, 4]
    assert chained.get(timeout=5) == 6
    assert joined.get(timeout=5) == 22


def test_a_chosen_sender_is_this_threads_only(app: Celery, add: Any) -> None:
    outbox, inside, done = Outbox(app), threading.Event(), threading.Event()

    def other() -> None:
        with app.sending_through(outbox):
            inside.set()
            done.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(5)
        add.delay(1, 2)  # another thread's block does not catch this call
        assert _ready(app) == 1 and outbox.held == []
    finally:
        done.set()
        thread.join()


def test_app_sender_sets_the_default_and_none_restores_the_broker(app: Celery, add: Any) -> None:
    outbox = Outbox(app)
    app.sender = outbox
    add.delay(1, 2)
    assert len(outbox.held) == 1 and _ready(app) == 0
    app.sender = None
    add.delay(1, 2)
    assert _ready(app) == 1
    with pytest.raises(TypeError, match="Sender"):
        app.sender = object()
    with pytest.raises(TypeError, match="subclass Sender"):
        app.sending_through(object()).__enter__()  # the wrong type is the point


def test_a_failed_send_fails_the_call_and_frees_its_idempotency_key(app: Celery, add: Any) -> None:
    with app.sending_through(Refusing()), pytest.raises(RuntimeError, match="rolled back"):
        add.apply_async((1, 2), idempotency_key="order-7")
    result = add.apply_async((1, 2), idempotency_key="order-7")  # the key is free again
    assert _ready(app) == 1 and drain(app) == 1 and result.get(timeout=5) == 3


def test_the_broker_sender_publishes_from_an_event_loop(app: Celery) -> None:
    messages = [OutboundMessage("celery", b"x", f"m-{n}") for n in range(3)]

    async def send() -> None:
        try:
            await BrokerSender(app.broker).send_async(messages, RetryPolicy())
        finally:
            await app.broker.close_async()

    asyncio.run(send())
    assert _ready(app) == 3
