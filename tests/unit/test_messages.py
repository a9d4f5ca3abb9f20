"""Messages: the wire form, serializers, call-time serialization errors, size limits."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError
from celeriac.messages import Message, decode_task_body, dumps, loads, resolve_accept
from celeriac.messages.protocol import custom_headers, task_message
from tests.conftest import take_messages


class User:
    """Stands for an ORM object (never pass one to a task)."""

    def __init__(self, id: int) -> None:
        self.id = id


def test_wire_form_round_trips_headers_properties_and_binary_body() -> None:
    message = Message(
        {"id": "1", "task": "t"},
        b"\x00\xffbody",
        "application/x-msgpack",
        "binary",
        {"priority": 3},
    )
    again = Message.decode(message.encode())
    assert again == message


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"", "not a celeriac message"),
        (b"{}", "not a celeriac message"),
        (b"CLR1\x00", "truncated"),
        (b"CLR1\x00\x00\x00\x09{}", "truncated"),
        (b"CLR1\x00\x00\x00\x02{x", "not valid JSON"),
        (b"CLR1\x00\x00\x00\x02[]", "no headers"),
        (b'CLR1\x00\x00\x00\x0e{"h":{"id":1}}', "string 'id'"),
    ],
)
def test_malformed_payloads_raise_decode_error_naming_the_problem(
    payload: bytes, problem: str
) -> None:
    with pytest.raises(DecodeError, match=problem):
        Message.decode(payload)


def test_json_round_trips_dates_uuids_decimals_and_bytes() -> None:
    value = {
        "when": dt.datetime(2026, 11, 21, 9, 30, tzinfo=dt.timezone.utc),
        "day": dt.date(2026, 11, 21),
        "id": uuid.UUID(int=7),
        "price": decimal.Decimal("9.99"),
        "blob": b"\x00\x01",
        "nested": [1, "two", None, True],
    }
    data, content_type, _ = dumps(value, "json")
    assert loads(data, content_type, resolve_accept(["json"])) == value


def test_msgpack_round_trip() -> None:
    data, content_type, _ = dumps({"a": [1, 2]}, "msgpack")
    assert content_type == "application/x-msgpack"
    assert loads(data, content_type, resolve_accept(["msgpack"])) == {"a": [1, 2]}


def test_pickle_is_refused_unless_accepted() -> None:
    data, content_type, _ = dumps({"a": 1}, "pickle")
    with pytest.raises(ContentDisallowed, match="not in accept_content"):
        loads(data, content_type, resolve_accept(["json"]))
    assert loads(data, content_type, resolve_accept(["json", "pickle"])) == {"a": 1}


def test_unknown_serializer_names_the_choices() -> None:
    with pytest.raises(EncodeError, match="choose one of: auth, json, msgpack, pickle"):
        dumps(1, "yaml")


def test_orm_object_argument_fails_at_call_time_naming_it(app: Celery) -> None:
    @app.task
    def my_task(user: Any) -> None:
        return None

    with pytest.raises(EncodeError) as info:
        my_task.delay(User(42))
    text = str(info.value)
    assert "argument 'user' (position 0)" in text
    assert "User" in text and "pass its id" in text and "my_task.delay(obj.id)" in text
    assert app.broker.queue_length("celery") == 0  # nothing half-sent


def test_unserialisable_keyword_argument_is_named(app: Celery) -> None:
    @app.task
    def notify(to: str, when: Any = None) -> None:
        return None

    with pytest.raises(EncodeError, match="keyword argument 'when'"):
        notify.delay("a@b.c", when={1, 2})


def test_oversized_message_fails_at_call_time_with_the_limit(app: Celery) -> None:
    app.conf.task_message_max_size = 1000

    @app.task
    def upload(data: str) -> None:
        return None

    with pytest.raises(EncodeError, match=r"over the limit of 1000 bytes.*task_message_max_size"):
        upload.delay("x" * 2000)
    upload.delay("x" * 10)  # under the limit: fine


def test_the_limit_counts_the_body_before_compression(app: Celery) -> None:
    # A worker holds the body decompressed: a body that compresses under the limit but
    # would decompress past it is refused in the caller, where the fix is.
    app.conf.task_message_max_size = 1000

    @app.task
    def upload(data: str) -> None:
        return None

    with pytest.raises(EncodeError, match=r"message body is 2\d{3} bytes.*task_message_max_size"):
        upload.apply_async(("x" * 2000,), compression="zlib")


def test_the_limit_counts_the_headers_too(app: Celery) -> None:
    app.conf.task_message_max_size = 1000

    @app.task
    def upload(data: str) -> None:
        return None

    with pytest.raises(EncodeError, match=r"as sent \(headers and body\) is \d+ bytes, over"):
        upload.apply_async(("x",), headers={"tenant": "t" * 2000})


def test_msgpack_task_serializer_is_used_on_the_message(app: Celery) -> None:
    app.conf.update(task_serializer="msgpack", accept_content=["json", "msgpack"])

    @app.task
    def echo(x: Any) -> Any:
        return x

    echo.delay({"k": [1, 2]})
    [(message, _)] = take_messages(app)
    assert message.content_type == "application/x-msgpack"
    assert decode_task_body(message, resolve_accept(["msgpack"])).args == ({"k": [1, 2]},)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"[1, 2]", "3-item array"),
        (b"[{}, {}, {}]", "args must be an array"),
        (b"[[], [], {}]", "kwargs must be an object"),
        (b"[[], {}, 5]", "embed must be an object"),
        (b"not json", "cannot decode json"),
    ],
)
def test_malformed_task_bodies_are_decode_errors(body: bytes, problem: str) -> None:
    message = task_message(task_name="t", task_id="1")
    message.body = body
    with pytest.raises(DecodeError, match=problem):
        decode_task_body(message, resolve_accept(["json"]))


def test_custom_headers_are_exactly_the_callers_own() -> None:
    now = dt.datetime.now(dt.timezone.utc)
    message = task_message(
        task_name="t.x", task_id="id-1", args=(1,), kwargs={"k": 2}, eta=now, expires=now,
        retries=2, root_id="root", parent_id="parent", group_id="g", group_index=0,
        time_limit=10, soft_time_limit=5, ignore_result=True, shadow="alias", origin="host",
        idempotency_key="key", extra_headers={"tenant": "acme", "retries": 99},
    )  # fmt: skip
    assert custom_headers(message.headers) == {"tenant": "acme"}  # a protocol name is ours
    assert message.headers["retries"] == 2
