"""What rpc:// asks of the calls a client sends, on the memory broker: a ``reply_to`` naming
the client's reply topic on every call that wants its result, kept by retries and carried
by every step of a chain; none with another store or for an ignored result."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group
from celeriac.messages import Message
from celeriac.messages.protocol import decode_task_body
from celeriac.testing import drain


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("calls", broker="memory://", backend="rpc://", set_as_current=False)
    yield app
    app.close()


def sent(app: Celery) -> list[Message]:
    """The messages waiting in the default queue, taken off it."""

    async def fetch() -> list[Message]:
        deliveries = await app.broker.fetch(["celery"], 100, 0.1)
        for delivery in deliveries:
            await delivery.ack()
        return [app.broker.wire_format.decode(d.payload) for d in deliveries]

    return asyncio.run(fetch())


def test_a_call_carries_the_clients_reply_topic(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    [message] = sent(app)
    assert message.properties["reply_to"] == app.backend.reply_address()
    assert message.properties["reply_to"].startswith("celeriac.reply.")


def test_an_ignored_result_or_an_own_reply_to_gets_no_reply_topic(app: Celery) -> None:
    @app.task(ignore_result=True)
    def fire() -> None:
        return None

    fire.delay()
    app.send_task("calls.other", reply_to="somewhere.else")
    ignored, own = sent(app)
    assert "reply_to" not in ignored.properties
    assert own.properties["reply_to"] == "somewhere.else"


def test_another_result_store_sends_no_reply_to() -> None:
    app = Celery("calls", broker="memory://", backend="cache+memory://", set_as_current=False)
    try:
        app.send_task("calls.add", (1, 2))
        [message] = sent(app)
        assert "reply_to" not in message.properties
    finally:
        app.close()


def test_every_later_step_of_a_chain_answers_the_client(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    chain(add.s(1, 2), add.s(3), add.s(4)).apply_async()
    [first] = sent(app)
    address = app.backend.reply_address()
    assert first.properties["reply_to"] == address
    body = decode_task_body(first, frozenset({first.content_type}))
    steps: list[dict[str, Any]] = body.embed["chain"]
    assert [step["options"]["reply_to"] for step in steps] == [address, address]


def test_a_retry_keeps_the_callers_reply_to(app: Celery) -> None:
    @app.task(bind=True, name="calls.flaky")
    def flaky(self: Any) -> int:
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return int(self.request.retries)

    # A caller of its own on the same broker; ``app`` plays the worker (which re-sends
    # the retry from its own process, with a reply topic of its own)
    caller = Celery("caller", broker=app.broker, backend="rpc://", set_as_current=False)
    try:
        result = caller.send_task("calls.flaky")
        drain(app)
        assert result.get(timeout=5) == 1
    finally:
        caller.backend.close()


def test_a_workflow_of_an_apps_signatures_sends_through_that_app(app: Celery) -> None:
    # Given another app as the current one, and a group, a chain and a chord built from
    # ``app``'s signatures without app=
    current = Celery("current", broker="memory://", backend="cache+memory://")
    try:

        @app.task(name="calls.add")
        def add(x: int, y: int) -> int:
            return x + y

        members = group(app.signature("calls.add", (i, i)) for i in range(3))
        steps = chain(app.signature("calls.add", (1, 2)), app.signature("calls.add", (3,)))
        # Then each belongs to ``app``, as in Celery, and its results come back to it
        assert members.app is app and steps.app is app
        results = members.apply_async(), steps.apply_async()
        drain(app)
        assert results[0].get(timeout=5) == [0, 2, 4] and results[1].get(timeout=5) == 6
        with pytest.raises(NotImplementedError, match="cannot run chords"):
            chord(members)(app.signature("calls.add", (1,)))
    finally:
        current.close()
