"""Every field a worker reads from a message is checked before anything acts on it; a bad
one dead-letters the message as malformed, naming the field, the value and what was
expected. A failure in handling a message settles it too (internal_error)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.canvas import chain, chord, group
from celeriac.exceptions import DecodeError, EncodeError, InvalidTaskError
from celeriac.messages import Message, check_body, check_envelope, dumps, loads, task_message
from celeriac.messages.validation import parse_iso
from celeriac.testing import drain, start_worker
from tests.conftest import take_messages

JSON = frozenset({"application/json"})


def envelope_error(headers: dict[str, Any], properties: Any = None) -> str:
    with pytest.raises(InvalidTaskError) as info:
        check_envelope({"task": "t.add", "id": "1", **headers}, properties or {})
    return str(info.value)


@pytest.mark.parametrize(
    ("headers", "field", "expected"),
    [
        ({"retries": "many"}, "header 'retries'", "non-negative integer"),
        ({"retries": [1, 2]}, "header 'retries'", "non-negative integer"),
        ({"retries": -1}, "header 'retries'", "non-negative integer"),
        ({"retries": True}, "header 'retries'", "non-negative integer"),
        ({"timelimit": 5}, "header 'timelimit'", "[hard, soft]"),
        ({"timelimit": [5]}, "header 'timelimit'", "[hard, soft]"),
        ({"timelimit": [5, "soon"]}, "header 'timelimit'", "[hard, soft]"),
        ({"timelimit": [-1, None]}, "header 'timelimit'", "[hard, soft]"),
        ({"expires": "tomorrow"}, "header 'expires'", "ISO 8601"),
        ({"expires": 12345}, "header 'expires'", "ISO 8601"),
        ({"eta": "soon"}, "header 'eta'", "ISO 8601"),
        ({"eta": 1.5}, "header 'eta'", "ISO 8601"),
        ({"group": 7}, "header 'group'", "a string"),
        ({"group_index": "0"}, "header 'group_index'", "non-negative integer"),
        ({"root_id": 5}, "header 'root_id'", "a string"),
        ({"parent_id": ["x"]}, "header 'parent_id'", "a string"),
        ({"shadow": {}}, "header 'shadow'", "a string"),
        ({"argsrepr": 1}, "header 'argsrepr'", "a string"),
        ({"origin": 1}, "header 'origin'", "a string"),
        ({"ignore_result": "yes"}, "header 'ignore_result'", "true or false"),
        ({"idempotency_key": 42}, "header 'idempotency_key'", "a string"),
    ],
)
def test_each_bad_header_is_named_with_its_value_and_what_was_expected(
    headers: dict[str, Any], field: str, expected: str
) -> None:
    error = envelope_error(headers)
    [value] = headers.values()
    assert error.startswith(f"{field} must be ") and expected in error
    assert error.endswith(f"not {value!r}")


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"priority": 10}, "property 'priority'"),
        ({"priority": "high"}, "property 'priority'"),
        ({"priority": True}, "property 'priority'"),
        ({"reply_to": 5}, "property 'reply_to'"),
        ({"correlation_id": 5}, "property 'correlation_id'"),
    ],
)
def test_each_bad_property_is_named(properties: dict[str, Any], field: str) -> None:
    assert envelope_error({}, properties).startswith(f"{field} must be ")


def test_a_long_bad_value_is_shortened_in_the_error() -> None:
    error = envelope_error({"retries": "x" * 10_000})
    assert len(error) < 200 and error.endswith("...")


def test_what_producers_write_passes() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    message = task_message(
        task_name="t.add", task_id="1", args=(1,), kwargs={"y": 2}, eta=now, expires=now,
        retries=3, root_id="r", parent_id="p", group_id="g", group_index=0, time_limit=10,
        soft_time_limit=5, ignore_result=True, shadow="s", origin="o", priority=9,
        reply_to="q", idempotency_key="k", extra_headers={"tenant": ["any", "value"]},
    )  # fmt: skip
    check_envelope(message.headers, message.properties)
    # Celery writes the defaults out as nulls; a UTC time ending in Z is read on 3.10 too.
    check_envelope(
        {"eta": None, "expires": "2024-05-01T12:30:00Z", "timelimit": [None, None],
         "group": None, "retries": 0, "shadow": None, "argsrepr": None},
        {"priority": None, "correlation_id": "1"},
    )  # fmt: skip
    assert parse_iso("2024-05-01T12:30:00Z").tzinfo == dt.timezone.utc


def body_error(embed: Any = None, args: Any = (), kwargs: Any = None) -> str:
    with pytest.raises(InvalidTaskError) as info:
        check_body([args, {} if kwargs is None else kwargs, embed])
    return str(info.value)


NAMED = {"task": "t.add", "args": [], "kwargs": {}, "options": {}}


@pytest.mark.parametrize(
    ("embed", "field", "expected"),
    [
        ({"chain": "notalist"}, "embed 'chain'", "a list of signatures"),
        ({"chain": {"task": "t.add"}}, "embed 'chain'", "a list of signatures"),
        ({"callbacks": [{"args": []}]}, "embed 'callbacks'[0].task", "a task name"),
        ({"errbacks": [{"task": ""}]}, "embed 'errbacks'[0].task", "a task name"),
        ({"errbacks": ["t.add"]}, "embed 'errbacks'[0]", "a signature"),
        ({"chain": [NAMED, {**NAMED, "args": "12"}]}, "embed 'chain'[1].args", "an array"),
        ({"chain": [{**NAMED, "kwargs": [1]}]}, "embed 'chain'[0].kwargs", "an object"),
        ({"chain": [{**NAMED, "options": []}]}, "embed 'chain'[0].options", "an object"),
        ({"chord": "t.sum"}, "embed 'chord'", "a signature"),
        ({"chord": {**NAMED, "chord_size": "2"}}, "embed 'chord'.chord_size", "non-negative"),
        (
            {"chord": {**NAMED, "options": {"link_error": "t.err"}}},
            "embed 'chord'.options.link_error",
            "a list of signatures",
        ),
        (
            {"chain": [{**NAMED, "options": {"group_index": "1"}}]},
            "embed 'chain'[0].options.group_index",
            "non-negative integer",
        ),
        (
            {"chain": [{**NAMED, "subtask_type": "group", "kwargs": {"tasks": "ab"}}]},
            "embed 'chain'[0].kwargs.tasks",
            "a list of signatures",
        ),
        (
            {"chain": [{**NAMED, "subtask_type": "chord", "kwargs": {"header": NAMED}}]},
            "embed 'chain'[0].kwargs.body",
            "a signature",
        ),
        (
            {"callbacks": [{**NAMED, "options": {"chain": [{**NAMED, "task": 3}]}}]},
            "embed 'callbacks'[0].options.chain[0].task",
            "a task name",
        ),
    ],
)
def test_each_bad_canvas_field_is_named(embed: Any, field: str, expected: str) -> None:
    error = body_error(embed)
    assert error.startswith(f"{field} must be ") and expected in error


def test_bad_body_parts_are_named() -> None:
    assert "task args must be an array" in body_error(args={})
    assert "task kwargs must be an object" in body_error(kwargs=[])
    assert "a key of task kwargs must be a string" in body_error(kwargs={1: "one"})
    assert "task embed must be an object" in body_error(embed=5)
    with pytest.raises(InvalidTaskError, match="3-item array"):
        check_body([[], {}])


def test_a_canvas_nested_too_deeply_is_refused_not_a_crash() -> None:
    nested: dict[str, Any] = dict(NAMED)
    for _ in range(5_000):
        nested = {**NAMED, "options": {"chord": nested}}
    with pytest.raises(InvalidTaskError, match="nested too deeply"):
        check_body([[], {}, {"chord": nested}])


def test_every_canvas_celeriac_sends_passes(app: Celery) -> None:
    @app.task
    def add(x: int, y: int = 0) -> int:
        return x + y

    @app.task
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task
    def on_error(*args: Any) -> None:
        return None

    chain(add.s(1, 2), group(add.s(3), add.s(4)), tsum.s(), add.s(5).on_error(on_error.s()))()
    chord([add.s(1, 1), chain(add.s(2, 2), add.s(3))], tsum.s().on_error(on_error.si()))()
    add.apply_async((1, 2), link=[add.s(9)], link_error=on_error.si(), expires=60)
    taken = take_messages(app)
    assert len(taken) == 4
    for message, _ in taken:
        check_envelope(message.headers, message.properties)
        check_body(loads(message.body, message.content_type, JSON))


# -- through the worker's path -------------------------------------------------------------
def publish(
    app: Celery, task: Any, message_id: str, headers: Any = None, embed: Any = None
) -> None:
    """A hand-made call of ``task(1, 2)`` with one bad field, as another producer might send."""
    message = task_message(task_name=task.name, task_id=message_id, args=(1, 2))
    message.headers.update(headers or {})
    if embed is not None:
        message.body = dumps([[1, 2], {}, embed], "json")[0]
    app.broker.publish(OutboundMessage("celery", message.encode(), message_id))


def test_a_bad_header_dead_letters_the_message_and_records_why(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    publish(app, add, "bad-retries", headers={"retries": "many"})
    publish(app, add, "bad-eta", headers={"eta": "soon"})
    good = add.delay(2, 3)
    assert drain(app) == 3
    assert good.get(timeout=1) == 5 and ran == [5]  # only the good call ran
    letters = {letter.message_id: letter for letter in app.broker.dead_letters("celery")}
    assert {letter.reason for letter in letters.values()} == {DeadLetterReason.MALFORMED}
    assert "header 'retries'" in letters["bad-retries"].detail
    assert "header 'eta'" in letters["bad-eta"].detail
    # As in Celery, a bad eta or expires is an InvalidTaskError; get() raises it.
    with pytest.raises(InvalidTaskError, match="'retries'"):
        app.AsyncResult("bad-retries").get(timeout=1)
    assert issubclass(InvalidTaskError, DecodeError)


def test_a_chain_that_is_not_a_list_is_refused_before_the_task_runs(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def add(x: int, y: int) -> int:
        ran.append(x + y)
        return x + y

    publish(app, add, "bad-chain", embed={"chain": "notalist"})
    assert drain(app) == 1
    assert ran == []  # not run, and no message for a task named 't' was sent
    assert app.broker.queue_length("celery") == 0
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.MALFORMED
    assert letter.detail == "embed 'chain' must be a list of signatures, not 'notalist'"


def test_an_expires_in_utc_with_a_z_is_understood(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    publish(app, add, "old", headers={"expires": "2000-01-01T00:00:00Z"})
    drain(app)
    assert app.AsyncResult("old").state == states.REVOKED  # expired, not malformed
    assert app.broker.dead_letters("celery") == []


def test_a_failure_in_handling_dead_letters_the_message_once() -> None:
    app = Celery("w", broker="memory://", backend="cache+memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True)
    def unsendable_retry(self: Any, handle: Any = None) -> None:
        # The worker sends the retry after the run, and cannot encode it.
        raise self.retry(kwargs={"handle": object()}, countdown=0)

    with start_worker(app, pool="threads", concurrency=1):
        failing = unsendable_retry.delay()
        with pytest.raises(EncodeError, match="'handle'"):
            failing.get(timeout=5)  # recorded, so get() does not wait forever
        assert add.delay(2, 3).get(timeout=5) == 5  # the worker goes on
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.INTERNAL_ERROR and letter.delivery_count == 1
    assert letter.detail.startswith("internal error: EncodeError: ")
    assert app.broker.queue_length("celery") == 0 and app.broker.delayed_count("celery") == 0
    app.close()


def test_a_message_still_decodes_when_a_header_is_bad() -> None:
    # Listing dead letters reads envelopes: decoding itself does not refuse bad fields.
    payload = Message({"task": "t.add", "id": "1", "retries": "many"}, b"[]").encode()
    assert Message.decode(payload).headers["retries"] == "many"
