"""Celery's wire format: the codec between celeriac's ``Message`` and Celery's task message
protocol 2, and kombu's Redis envelope, checked against messages Celery 5.7 wrote.

The golden files in tests/compat/celery_golden/ were written by Celery's own producer
(make_golden.py, run with a Python that has Celery). Each holds the exact text kombu's
Redis transport pushes; celeriac must read it into the message Celery meant, and write
that message back byte for byte. A last test has kombu itself read what celeriac writes,
when a Python with Celery is at hand.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import decimal
import json
import os
import subprocess
import sys
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery, chain
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import DecodeError, InvalidTaskError, MessageTooLarge
from celeriac.messages import Message, check_envelope, decode_task_body
from celeriac.messages.celery import (
    BUILTINS,
    HEADERS,
    CeleryWire,
    from_celery,
    from_kombu_redis,
    to_celery,
    to_kombu_redis,
)
from celeriac.messages.celery.task_protocol import PROTOCOL_HEADERS
from celeriac.messages.serializers import dumps, resolve_accept
from celeriac.request import Request
from celeriac.testing import drain
from tests.conftest import take_messages

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "compat" / "celery_golden"
GOLDENS = {path.stem: json.loads(path.read_text("utf-8")) for path in GOLDEN_DIR.glob("*.json")}
NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc).timestamp()  # make_golden's clock
ORIGIN = "gen4242@golden-host"  # make_golden's producer
CELERY_REPLY_TO = "0f3c9a5e-7b1d-3c55-9e2a-5d8f4b6a1c00"  # its app's reply queue
ACCEPT = resolve_accept(["json", "msgpack", "pickle"])
# The properties only a transport reads: kept in CeleryWire, never in a Message.
TRANSPORT_PROPERTIES = ("delivery_info", "body_encoding", "delivery_tag")


def golden_id(name: str) -> str:
    return str(GOLDENS[name]["headers"].get("id") or GOLDENS[name]["body_json"]["id"])


def payload(name: str) -> bytes:
    return str(GOLDENS[name]["redis_payload"]).encode("ascii")


def from_golden(name: str) -> Message:
    return from_celery(from_kombu_redis(payload(name)))


def signature(task: str, *args: Any, **options: Any) -> dict[str, Any]:
    return {"task": task, "args": list(args), "kwargs": {}, "options": options,
            "subtask_type": None, "immutable": False}  # fmt: skip


# What each golden reads as: the headers and properties of the celeriac message (only
# what differs from the defaults, as celeriac writes its own), and its arguments.
def expected(
    name: str,
    *,
    task: str = "proj.add",
    args: Any = (1, 2),
    kwargs: dict[str, Any] | None = None,
    properties: dict[str, Any] | None = None,
    **headers: Any,
) -> tuple[dict[str, Any], dict[str, Any], tuple[Any, ...], dict[str, Any]]:
    base = {"task": task, "id": golden_id(name), "argsrepr": repr(tuple(args)) if args else None,
            "origin": ORIGIN}  # fmt: skip
    base.update(headers)
    props = {"reply_to": CELERY_REPLY_TO} if properties is None else properties
    return (
        {key: value for key, value in base.items() if value is not None},
        props,
        tuple(args),
        kwargs or {},
    )


def expectations() -> dict[str, tuple[dict[str, Any], dict[str, Any], tuple[Any, ...], Any]]:
    hidden: dict[str, Any] = {"argsrepr": "(<hidden>, 2)"}
    unicode_kwargs = {"ключ": "значение", "emoji": "✓"}
    typed = (
        dt.datetime(2030, 6, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc),
        dt.date(2030, 6, 1),
        dt.time(12, 30, 15),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        decimal.Decimal("3.14159"),
        b"plain bytes",
        b"\xff\x00\xfe",
    )
    group_of = {n: GOLDENS[n]["headers"]["group"] for n in GOLDENS if n[:5] in ("group", "chord")}
    return {
        "plain": expected("plain", args=(2, 2)),
        "kwargs": expected("kwargs", args=(), kwargs={"x": 1, "y": 2},
                           kwargsrepr="{'x': 1, 'y': 2}"),
        "eta": expected("eta", eta="2030-06-01T12:30:00+00:00"),
        "countdown": expected("countdown", eta="2030-01-02T03:04:35+00:00"),
        "expires": expected("expires", expires="2030-01-02T03:05:05+00:00"),
        "time_limits": expected("time_limits", timelimit=[30, 20]),
        "priority": expected("priority", properties={"priority": 7, "reply_to": CELERY_REPLY_TO}),
        "retries": expected("retries", retries=3),
        "shadow": expected("shadow", shadow="add-as-shown"),
        "ignore_result": expected("ignore_result", ignore_result=True),
        "reply_to": expected("reply_to", properties={"reply_to": "replies.q"}),
        "root_parent": expected(
            "root_parent", root_id="rootid-0000-4000-8000-000000000000",
            parent_id="parentid-0000-4000-8000-000000000000",
        ),
        "link": expected("link"),
        "stamped": expected("stamped", stamped_headers=["wave", "tenant"],
                            stamps={"wave": 3, "tenant": "acme"}),
        "unicode": expected("unicode", task="proj.echo", args=("héllo ☃ 🐍", "ß"),
                            kwargs=unicode_kwargs, kwargsrepr=repr(unicode_kwargs)),
        "typed_args": expected(
            "typed_args", task="proj.echo", args=typed,
            argsrepr=GOLDENS["typed_args"]["headers"]["argsrepr"],  # Celery's saferepr
        ),
        "custom_headers": expected("custom_headers", tenant="acme", trace=[1, 2]),
        "argsrepr": expected("argsrepr", args=("secret", 2), **hidden),
        "replaced": expected("replaced", replaced_task_nesting=2),
        "compressed": expected("compressed", compression="application/x-gzip"),
        "pickle": expected("pickle"),
        "chain": expected("chain"),
        "group_1": expected("group_1", args=(1, 1), group=group_of["group_1"], group_index=0),
        "group_2": expected("group_2", args=(2, 2), group=group_of["group_2"], group_index=1),
        "chord_header_1": expected("chord_header_1", args=(1, 1), group=group_of["chord_header_1"],
                                   group_index=0),
        "chord_header_2": expected("chord_header_2", args=(2, 2), group=group_of["chord_header_2"],
                                   group_index=1),
        "chord_body": expected("chord_body", task="proj.tsum", args=([2, 4],),
                               group=group_of["chord_body"]),
        "nested_canvas": expected("nested_canvas", args=(1, 1)),
        "protocol1": expected(
            "protocol1", argsrepr=None, origin=None, eta="2030-06-01T12:30:00+00:00",
            expires="2030-06-02T00:00:00+00:00", retries=1, timelimit=[30, 20],
        ),
    }  # fmt: skip


EXPECTED = expectations()


def test_every_golden_has_an_expectation() -> None:
    assert len(GOLDENS) >= 20
    assert sorted(EXPECTED) == sorted(GOLDENS)


# -- the golden messages --------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_the_redis_envelope_opens_into_the_parts_celery_wrote(name: str) -> None:
    golden = GOLDENS[name]
    wire = from_kombu_redis(payload(name))
    assert wire.headers == golden["headers"]
    transport = {k: v for k, v in golden["properties"].items() if k in TRANSPORT_PROPERTIES}
    assert wire.properties == {
        k: v for k, v in golden["properties"].items() if k not in TRANSPORT_PROPERTIES
    }
    assert wire.delivery_info == transport["delivery_info"] == {
        "exchange": "", "routing_key": golden["queue"]
    }  # fmt: skip
    assert wire.delivery_tag == transport["delivery_tag"]
    assert (wire.exchange, wire.routing_key) == ("", "celery")
    assert wire.content_type == golden["content_type"]
    assert wire.content_encoding == golden["content_encoding"]
    assert wire.body == base64.b64decode(golden["body_base64"])


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_a_celery_message_reads_as_the_call_celery_made(name: str) -> None:
    headers, properties, args, kwargs = EXPECTED[name]
    message = from_golden(name)
    assert message.headers == headers
    assert message.properties == properties
    assert message.content_type == GOLDENS[name]["content_type"]
    check_envelope(message.headers, message.properties)  # the worker's checks pass
    body = decode_task_body(message, ACCEPT)
    assert body.args == args
    assert body.kwargs == kwargs
    request = Request.from_message(message, body, queue="celery")
    assert request.id == golden_id(name)
    assert request.root_id == headers.get("root_id", request.id)
    assert request.parent_id == headers.get("parent_id")
    assert request.retries == headers.get("retries", 0)
    assert request.timelimit == tuple(headers.get("timelimit", (None, None)))
    assert request.reply_to == properties.get("reply_to")
    assert request.correlation_id == request.id
    assert request.delivery_info["priority"] == properties.get("priority")


def test_canvas_in_a_celery_message_reads_with_celeriac_names() -> None:
    link = decode_task_body(from_golden("link"), ACCEPT).embed
    reply = {"reply_to": CELERY_REPLY_TO}
    assert link["callbacks"] == [signature("proj.mul", 10)]
    assert link["errbacks"] == [signature("proj.on_error")]
    steps = decode_task_body(from_golden("chain"), ACCEPT).embed["chain"]
    assert [(step["task"], step["args"]) for step in steps] == [
        ("proj.tsum", [[1]]), ("proj.mul", [10])  # the next step last, as both write it
    ]  # fmt: skip
    assert steps[1]["options"] == {"task_id": steps[1]["options"]["task_id"], **reply}
    header = from_golden("chord_header_1")
    body = decode_task_body(header, ACCEPT).embed["chord"]
    assert body["task"] == "proj.tsum"
    assert body["options"]["group_id"] == header.headers["group"]
    assert body["options"]["task_id"] == golden_id("chord_body")  # the body's own message
    [nested] = decode_task_body(from_golden("nested_canvas"), ACCEPT).embed["chain"]
    assert (nested["task"], nested["subtask_type"]) == ("celeriac.chord", "chord")
    assert nested["kwargs"]["header"]["task"] == "celeriac.group"
    assert [sig["args"] for sig in nested["kwargs"]["header"]["kwargs"]["tasks"]] == [[2], [3]]
    assert nested["kwargs"]["body"]["task"] == "proj.tsum"


@pytest.mark.parametrize("name", sorted(set(GOLDENS) - {"protocol1"}))
def test_a_celery_message_crosses_back_byte_for_byte(name: str) -> None:
    golden = GOLDENS[name]
    wire = from_kombu_redis(payload(name))
    back = to_celery(from_celery(wire), routing_key="celery", now=NOW)
    # Field by field first, for a readable failure.
    assert list(back.headers) == list(golden["headers"])  # Celery's order
    assert back.headers == golden["headers"]
    sent = dict(wire.properties)
    if name == "argsrepr":
        # Celery 5.7 also copies apply_async's argsrepr and kwargsrepr into the message
        # properties; nothing reads that copy (its workers read the headers), and
        # to_celery writes them in the headers only.
        assert (sent.pop("argsrepr"), sent.pop("kwargsrepr")) == ("(<hidden>, 2)", "{}")
    assert back.properties == sent
    assert back.delivery_info == wire.delivery_info
    assert (back.content_type, back.content_encoding) == (wire.content_type, wire.content_encoding)
    assert back.body == wire.body  # a rewritten body (typed_args) too: kombu's layout
    written = to_kombu_redis(back, delivery_tag=wire.delivery_tag)
    if name != "argsrepr":
        assert written == payload(name)
    else:
        assert json.loads(written)["properties"] == {
            k: v for k, v in golden["properties"].items() if k not in ("argsrepr", "kwargsrepr")
        }


def test_a_protocol_1_message_is_sent_on_as_protocol_2() -> None:
    message = from_golden("protocol1")
    body = decode_task_body(message, ACCEPT)
    assert body.embed == {"callbacks": [signature("proj.add", 5)]}
    wire = to_celery(message, routing_key="celery")
    assert list(wire.headers) == list(HEADERS)
    assert wire.headers["timelimit"] == [30, 20]
    assert wire.headers["root_id"] == wire.headers["id"] == golden_id("protocol1")
    assert json.loads(wire.body) == [[1, 2], {}, {"callbacks": [signature("proj.add", 5)]}]


@pytest.mark.parametrize("serializer", ["json", "msgpack"])
def test_a_protocol_1_body_is_read_in_either_serializer(serializer: str) -> None:
    old = {
        "task": "celery.map", "id": "t-1", "args": [[1, 2]], "kwargs": {"k": "v"},
        "taskset": "g-1", "retries": 2, "utc": True, "eta": "2030-01-01T00:00:00",
        "errbacks": [signature("proj.on_error")],
        "chord": signature("celery.starmap"),
    }  # fmt: skip
    if serializer == "json":  # kombu's markers, read in celeriac's dialect once only
        old["args"].append({"__type__": "bytes", "__value__": "raw"})
        old["args"].append({"__type__": "uuid", "__value__": {"hex": "ab" * 16}})
    data, content_type, encoding = dumps(old, serializer)
    message = from_celery(CeleryWire(data, {"tenant": "acme"}, {}, content_type, encoding))
    assert message.headers == {
        "task": "celeriac.map", "id": "t-1", "eta": "2030-01-01T00:00:00", "retries": 2,
        "group": "g-1", "tenant": "acme",
    }  # fmt: skip
    body = decode_task_body(message, ACCEPT)
    expected_args = [[1, 2], b"raw", uuid.UUID("ab" * 16)] if serializer == "json" else [[1, 2]]
    assert body.args == tuple(expected_args)
    assert body.kwargs == {"k": "v"}
    assert body.embed["errbacks"] == [signature("proj.on_error")]
    assert body.embed["chord"]["task"] == "celeriac.starmap"


def test_expiration_is_written_only_with_a_clock() -> None:
    message = from_golden("expires")
    assert "expiration" not in to_celery(message).properties
    assert to_celery(message, now=NOW).properties["expiration"] == "60000"
    assert to_celery(message, now=NOW + 600).properties["expiration"] == "0"  # already expired


def test_origin_and_routing_are_the_callers() -> None:
    message = Message({"task": "proj.add", "id": "t-1"}, b"[[],{},{}]")
    wire = to_celery(message, exchange="tasks", routing_key="high", delivery_mode=1, origin="w@h")
    assert wire.headers["origin"] == "w@h"
    assert (wire.exchange, wire.routing_key) == ("tasks", "high")
    assert wire.properties == {
        "correlation_id": "t-1", "reply_to": "", "delivery_mode": 1, "priority": 0
    }  # fmt: skip
    message.headers["origin"] = "producer@host"
    assert to_celery(message, origin="w@h").headers["origin"] == "producer@host"


# -- what celeriac's own producer writes ----------------------------------------------------------
def celeriac_calls(app: Celery) -> dict[str, Any]:
    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    @app.task(name="proj.on_error")
    def on_error(*args: Any) -> None:
        pass

    @app.task(name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        return [list(args), kwargs]

    def tid(name: str) -> str:
        return golden_id(name)

    def stamped() -> None:
        sig = add.s(1, 2).set(task_id=tid("stamped"))
        sig.stamp(tenant="acme", wave=3)
        sig.apply_async()

    # (Not an eta call: it waits in the broker until it is due; see the kombu test.)
    return {
        "plain": lambda: add.apply_async((2, 2), task_id=tid("plain")),
        "kwargs": lambda: add.apply_async(kwargs={"x": 1, "y": 2}, task_id=tid("kwargs")),
        "time_limits": lambda: add.apply_async(
            (1, 2), time_limit=30, soft_time_limit=20, task_id=tid("time_limits")
        ),
        "priority": lambda: add.apply_async((1, 2), priority=7, task_id=tid("priority")),
        "retries": lambda: add.apply_async((1, 2), retries=3, task_id=tid("retries")),
        "shadow": lambda: add.apply_async((1, 2), shadow="add-as-shown", task_id=tid("shadow")),
        "ignore_result": lambda: add.apply_async(
            (1, 2), ignore_result=True, task_id=tid("ignore_result")
        ),
        "reply_to": lambda: add.apply_async((1, 2), reply_to="replies.q", task_id=tid("reply_to")),
        "root_parent": lambda: add.apply_async(
            (1, 2), root_id="rootid-0000-4000-8000-000000000000",
            parent_id="parentid-0000-4000-8000-000000000000", task_id=tid("root_parent"),
        ),
        "link": lambda: add.apply_async(
            (1, 2), link=mul.s(10), link_error=on_error.s(), task_id=tid("link")
        ),
        "stamped": stamped,
        "unicode": lambda: echo.apply_async(
            ("héllo ☃ 🐍", "ß"), {"ключ": "значение", "emoji": "✓"}, task_id=tid("unicode")
        ),
        "typed_args": lambda: echo.apply_async(
            EXPECTED["typed_args"][2], task_id=tid("typed_args")
        ),
        "custom_headers": lambda: add.apply_async(
            (1, 2), headers={"tenant": "acme", "trace": [1, 2]}, task_id=tid("custom_headers")
        ),
        "argsrepr": lambda: add.apply_async(
            ("secret", 2), argsrepr="(<hidden>, 2)", kwargsrepr="{}", task_id=tid("argsrepr")
        ),
        "compressed": lambda: add.apply_async(
            (1, 2), compression="zlib", task_id=tid("compressed")
        ),
    }  # fmt: skip


def _normal_embed(body: Any) -> Any:
    """A body with its embed's null entries left out: both sides read null as absent."""
    args, kwargs, embed = body
    return [args, kwargs, {key: value for key, value in (embed or {}).items() if value is not None}]


def _json_body(wire: CeleryWire) -> Any:
    data = wire.body
    if wire.headers.get("compression"):
        data = zlib.decompress(data)
    return _normal_embed(json.loads(data))


def test_celeriacs_own_calls_cross_as_celery_writes_them(app: Celery) -> None:
    calls = celeriac_calls(app)
    assert len(calls) >= 15
    for name, call in calls.items():
        call()
        [(message, _)] = take_messages(app)
        wire = to_celery(message, routing_key="celery", origin=ORIGIN)
        golden = from_kombu_redis(payload(name))
        # celeriac's own header: when the call was sent (for the queue-wait metric); a
        # Celery worker hands it to the task as a custom header.
        assert isinstance(wire.headers.pop("sent_at"), float), name
        if name == "stamped":  # Celery lists the stamps' names from a set: any order
            assert sorted(wire.headers["stamped_headers"]) == ["tenant", "wave"]
            wire.headers["stamped_headers"] = golden.headers["stamped_headers"]
        assert wire.headers == golden.headers, name
        # Celery's producer always names its reply queue; celeriac names one only when the
        # result backend answers by message (rpc), or the caller gives one.
        if name != "reply_to":
            assert wire.properties.pop("reply_to") == ""
            assert golden.properties.pop("reply_to") == CELERY_REPLY_TO
        golden.properties.pop("argsrepr", None)  # Celery's copy (see above)
        golden.properties.pop("kwargsrepr", None)
        assert wire.properties == golden.properties, name
        assert (wire.content_type, wire.content_encoding, wire.delivery_info) == (
            golden.content_type, golden.content_encoding, golden.delivery_info
        ), name  # fmt: skip
        assert _json_body(wire) == _json_body(golden), name


def test_celeriac_builtins_cross_under_celerys_names(app: Celery) -> None:
    @app.task(name="proj.mul")
    def mul(x: int, y: int) -> int:
        return x * y

    mul.map([(1, 2)]).apply_async(task_id="m-1")
    chain(mul.s(1, 2), mul.starmap([(3, 4)])).apply_async()
    sent = [to_celery(message) for message, _ in take_messages(app)]
    assert sent[0].headers["task"] == "celery.map"
    [step] = json.loads(sent[1].body)[2]["chain"]
    assert step["task"] == "celery.starmap"
    assert from_celery(sent[0]).task_name == "celeriac.map"
    assert sorted(BUILTINS) == [
        "celery.accumulate", "celery.chain", "celery.chord", "celery.chunks", "celery.group",
        "celery.map", "celery.starmap",
    ]  # fmt: skip


# -- a celeriac worker runs what Celery sent ------------------------------------------------------
def test_a_celeriac_worker_runs_celerys_messages(app: Celery) -> None:
    ran: list[tuple[str, Any]] = []

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        ran.append(("add", (x, y)))
        return x + y

    @app.task(name="proj.mul")
    def mul(x: int, y: int) -> int:
        ran.append(("mul", (x, y)))
        return x * y

    @app.task(name="proj.tsum")
    def tsum(values: list[int]) -> int:
        ran.append(("tsum", values))
        return sum(values)

    @app.task(name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> Any:
        ran.append(("echo", (args, kwargs)))
        return None

    for name in ("plain", "kwargs", "link", "chain", "typed_args", "unicode", "compressed"):
        message = from_golden(name)
        app.broker.publish(OutboundMessage("celery", message.encode(), message.id))
    drain(app)
    assert sorted(ran, key=repr) == sorted([
        ("add", (2, 2)),
        ("add", (1, 2)),  # kwargs x=1, y=2
        ("add", (1, 2)),  # link
        ("add", (1, 2)),  # chain
        ("echo", (EXPECTED["typed_args"][2], {})),
        ("echo", (("héllo ☃ 🐍", "ß"), {"ключ": "значение", "emoji": "✓"})),
        ("add", (1, 2)),  # compressed
        ("mul", (3, 10)),  # link=mul.s(10)
        ("mul", (3, 10)),  # the chain's next step
        ("tsum", [1]),  # and its last, immutable
    ], key=repr)  # fmt: skip
    assert app.AsyncResult(golden_id("plain")).get(timeout=1) == 4


# -- round trips ----------------------------------------------------------------------------------
names = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
task_names = names.filter(lambda name: name not in BUILTINS)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | names
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
python_values = st.recursive(
    json_values
    | st.datetimes(timezones=st.just(dt.timezone.utc)) | st.dates() | st.times() | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False) | st.binary(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=8,
)  # fmt: skip
iso_times = st.datetimes(timezones=st.just(dt.timezone.utc)).map(dt.datetime.isoformat)
seconds = st.none() | st.integers(0, 10**6) | st.floats(0, 1e6)


@st.composite
def canvas(draw: st.DrawFn, depth: int = 2) -> dict[str, Any]:
    builtin = st.sampled_from(sorted(BUILTINS.values()))
    sig: dict[str, Any] = {
        "task": draw(task_names | builtin),
        "args": draw(st.lists(json_values, max_size=2)),
        "kwargs": {},
        "options": draw(st.fixed_dictionaries({}, optional={"task_id": names})),
        "subtask_type": None,
        "immutable": draw(st.booleans()),
    }
    if depth:
        kind = draw(st.sampled_from(["task", "link", "chain", "group"]))
        if kind == "link":
            sig["options"]["link"] = [draw(canvas(depth - 1))]
        elif kind in ("chain", "group"):
            sig.update(task=f"celeriac.{kind}", subtask_type=kind)
            sig["kwargs"] = {"tasks": draw(st.lists(canvas(depth - 1), max_size=2))}
    return sig


@st.composite
def celeriac_messages(draw: st.DrawFn) -> Message:
    """Messages as celeriac writes them: only what differs from the defaults."""
    task_id = draw(names)
    optional = {
        "shadow": names, "eta": iso_times, "expires": iso_times, "group": names,
        "group_index": st.integers(0, 100), "retries": st.integers(1, 100),
        "timelimit": st.tuples(seconds, seconds).filter(lambda t: t != (None, None)).map(list),
        "root_id": names.filter(lambda text: text != task_id), "parent_id": names,
        "argsrepr": names.filter(lambda text: text != "()"),
        "kwargsrepr": names.filter(lambda text: text != "{}"),
        "origin": names, "ignore_result": st.just(True), "idempotency_key": names,
        "replaced_task_nesting": st.integers(1, 5), "sent_at": st.floats(0, 2e9),
        "lang": names.filter(lambda text: text != "py"),
    }  # fmt: skip
    headers: dict[str, Any] = {"task": draw(task_names), "id": task_id}
    headers.update(draw(st.fixed_dictionaries({}, optional=optional)))
    stamps = draw(st.dictionaries(names.filter(lambda n: n not in PROTOCOL_HEADERS), json_values,
                                  max_size=2))  # fmt: skip
    if stamps:
        headers.update(stamped_headers=list(stamps), stamps=stamps)
    custom = st.dictionaries(names.filter(lambda n: n not in PROTOCOL_HEADERS), json_values,
                             max_size=3)  # fmt: skip
    for key, value in draw(custom).items():
        headers.setdefault(key, value)
    properties = draw(
        st.fixed_dictionaries({}, optional={
            "priority": st.integers(1, 9), "reply_to": names,
            "correlation_id": names.filter(lambda text: text != task_id),
        })
    )  # fmt: skip
    embed = draw(st.fixed_dictionaries({}, optional={
        "callbacks": st.lists(canvas(), min_size=1, max_size=2),
        "errbacks": st.lists(canvas(), min_size=1, max_size=2),
        "chain": st.lists(canvas(), min_size=1, max_size=2),
        "chord": canvas(),
    }))  # fmt: skip
    args = draw(st.lists(python_values, max_size=3))
    kwargs = draw(st.dictionaries(names, python_values, max_size=2))
    serializer = draw(st.sampled_from(["json", "json", "msgpack", "pickle"]))
    if serializer != "json":
        args, kwargs = draw(st.lists(json_values, max_size=3)), {}
    body, content_type, content_encoding = dumps([args, kwargs, embed], serializer)
    if draw(st.booleans()):
        headers["compression"] = "application/x-gzip"
        body = zlib.compress(body)
    return Message(headers, body, content_type, content_encoding, properties)


ROUND_TRIPS = settings(
    max_examples=int(os.environ.get("CELERIAC_FUZZ_EXAMPLES", "150")),
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@ROUND_TRIPS
@given(message=celeriac_messages(), routing_key=names, tag=names)
def test_a_celeriac_message_comes_back_as_it_left(
    message: Message, routing_key: str, tag: str
) -> None:
    wire = to_celery(message, routing_key=routing_key)
    assert list(wire.headers)[: len(HEADERS)] == list(HEADERS)
    assert from_celery(wire) == message
    # The same through kombu's Redis envelope.
    stored = to_kombu_redis(wire, delivery_tag=tag)
    assert from_kombu_redis(stored) == dataclasses.replace(wire, delivery_tag=tag)
    assert from_celery(from_kombu_redis(stored)) == message
    # What arrives reads as what was sent.
    if message.content_type != "application/x-python-serialize":
        assert decode_task_body(from_celery(wire), ACCEPT) == decode_task_body(message, ACCEPT)


@st.composite
def celery_wires(draw: st.DrawFn) -> CeleryWire:
    """Messages as Celery writes them: every protocol header, in its order."""
    task_id = draw(names)
    headers: dict[str, Any] = {
        "lang": "py", "task": draw(task_names.filter(lambda n: n not in BUILTINS.values())),
        "id": task_id, "shadow": draw(st.none() | names), "eta": draw(st.none() | iso_times),
        "expires": draw(st.none() | iso_times), "group": draw(st.none() | names),
        "group_index": draw(st.none() | st.integers(0, 9)), "retries": draw(st.integers(0, 9)),
        "timelimit": [draw(seconds), draw(seconds)], "root_id": draw(st.just(task_id) | names),
        "parent_id": draw(st.none() | names), "argsrepr": draw(names),
        "kwargsrepr": draw(names), "origin": draw(names), "ignore_result": draw(st.booleans()),
        "replaced_task_nesting": draw(st.integers(0, 3)), "stamped_headers": None, "stamps": {},
    }  # fmt: skip
    stamps = draw(st.dictionaries(names.filter(lambda n: n not in PROTOCOL_HEADERS), json_values,
                                  max_size=2))  # fmt: skip
    if stamps:
        headers.update(stamped_headers=list(stamps), stamps=stamps)
    for key, value in draw(st.dictionaries(names, json_values, max_size=2)).items():
        headers.setdefault(key, value)
    properties = {
        "correlation_id": draw(st.just(task_id) | names), "reply_to": draw(names | st.just("")),
        "delivery_mode": 2, "priority": draw(st.integers(0, 9)),
    }  # fmt: skip
    kombu_marked = st.sampled_from([
        {"__type__": "uuid", "__value__": {"hex": "12345678123456781234567812345678"}},
        {"__type__": "bytes", "__value__": "text bytes"},
        {"__type__": "base64", "__value__": "/wD+"},
        {"__type__": "datetime", "__value__": "2030-06-01T12:30:15+00:00"},
    ])  # fmt: skip
    args = draw(st.lists(json_values | kombu_marked, max_size=3))
    embed: dict[str, Any] = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
    if draw(st.booleans()):
        embed["chain"] = [draw(canvas())]
    body = json.dumps([args, {}, embed])  # kombu's layout
    body = body.replace('"celeriac.', '"celery.')  # Celery names its built-ins
    return CeleryWire(
        body.encode(),
        headers,
        properties,
        "application/json",
        "utf-8",
        {"exchange": "", "routing_key": draw(names)},
    )


@ROUND_TRIPS
@given(wire=celery_wires())
def test_a_celery_message_comes_back_as_it_left(wire: CeleryWire) -> None:
    message = from_celery(wire)
    assert "lang" not in message.headers  # the defaults are left out...
    assert all(
        message.headers[name] is not None for name in PROTOCOL_HEADERS & set(message.headers)
    )
    assert to_celery(message, routing_key=wire.routing_key) == wire


# -- hostile input --------------------------------------------------------------------------------
def _envelope(**changes: Any) -> bytes:
    envelope = json.loads(payload("plain"))
    for key, value in changes.items():
        if key.startswith("properties_"):
            envelope["properties"][key.removeprefix("properties_")] = value
        else:
            envelope[key.replace("_", "-")] = value
    return json.dumps(envelope).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "not valid JSON"),
        (payload("plain")[:-7], "not valid JSON"),  # truncated
        (b"[1, 2]", "a JSON array, not an object"),
        (b'"text"', "a JSON string, not an object"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"body": "", "headers": {"x": "\\ud800"}, "properties": {}}', "not valid Unicode"),
        (_envelope(properties=None), "'properties' must be an object, found none"),
        (_envelope(properties=[1]), "'properties' must be an object, found a JSON array"),
        (_envelope(headers=["task"]), "'headers' must be an object, found a JSON array"),
        (_envelope(body=5), "body must be a string, not number"),
        (_envelope(body="not base64!"), "body is not valid base64"),
        (_envelope(properties_body_encoding="rot13"), "body_encoding is 'rot13'"),
        (_envelope(content_type=5), "'content-type' must be a string, not number"),
        (_envelope(properties_delivery_info="q"), "properties 'delivery_info' must be an object"),
        (_envelope(properties_delivery_tag=7), "delivery_tag must be a string, not number"),
    ],
)
def test_an_unreadable_envelope_raises_decode_error_naming_the_problem(
    data: bytes, reason: str
) -> None:
    with pytest.raises(DecodeError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        from_kombu_redis(data)


def _wire(**changes: Any) -> CeleryWire:
    return dataclasses.replace(from_kombu_redis(payload("plain")), **changes)


def _headers(**changes: Any) -> dict[str, Any]:
    headers = dict(GOLDENS["plain"]["headers"])
    headers.update(changes)
    return {key: value for key, value in headers.items() if value != "DROP"}


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (_wire(headers=_headers(task="DROP")), "lack a string 'task'"),
        (_wire(headers=_headers(id="DROP")), "lack a string 'id'"),
        (_wire(headers=_headers(task=5)), "lack a string 'task' \\(found int\\)"),
        (_wire(headers=_headers(id="")), "lack a string 'id'"),
        (_wire(headers=["task"]), "headers must be an object, not list"),
        (_wire(properties="p"), "properties must be an object, not str"),
        (_wire(body="[[], {}, {}]"), "body must be bytes, not str"),
        (_wire(content_type=None), "no content type"),
        (_wire(content_encoding=8), "content encoding must be a string"),
        (_wire(headers={}), "not a Celery task message"),
        (_wire(headers={}, body=b"[[1, 2"), "protocol 1 message body cannot be read"),
        (_wire(headers={}, content_type="application/x-python-serialize"),
         "reads only as JSON or msgpack: have the producer send task protocol 2"),
        (_wire(headers={}, body=json.dumps({"task": "t", "id": "i", "utc": False,
                                            "eta": "2030-01-01T00:00:00"}).encode()),
         "local time \\(utc: false\\)"),
    ],
)  # fmt: skip
def test_what_is_not_a_task_message_raises_decode_error_naming_the_problem(
    wire: CeleryWire, reason: str
) -> None:
    with pytest.raises(DecodeError, match=reason):
        from_celery(wire)


def test_a_bad_field_is_left_for_the_workers_checks_which_name_it() -> None:
    # The codec needs only the task's name and id; the worker checks the rest as it
    # checks any message's, and records the failure against the task.
    message = from_celery(_wire(headers=_headers(retries="many", timelimit="30s")))
    with pytest.raises(InvalidTaskError, match="header 'retries' must be a non-negative integer"):
        check_envelope(message.headers, message.properties)
    message = from_celery(_wire(properties={"priority": "high"}))
    with pytest.raises(InvalidTaskError, match="property 'priority' must be an integer"):
        check_envelope(message.headers, message.properties)
    truncated = from_celery(_wire(body=b'[[1, 2], {"__type__": "uu'))
    assert truncated.body == b'[[1, 2], {"__type__": "uu'  # passed on as it is
    with pytest.raises(DecodeError, match="cannot decode json payload"):
        decode_task_body(truncated, ACCEPT)


def test_a_body_compressed_by_a_method_not_installed_goes_on_as_it_is() -> None:
    wire = _wire(headers=_headers(compression="application/x-brotli-missing"), body=b"\x00?")
    assert from_celery(wire).body == b"\x00?"  # the worker's reader names the method


def test_a_compressed_body_is_bounded_before_it_is_read() -> None:
    bomb = zlib.compress(b'[["__type__", "' + b"x" * 10_000_000 + b'"], {}, {}]')
    wire = _wire(headers=_headers(compression="application/x-gzip"), body=bomb)
    with pytest.raises(MessageTooLarge):
        from_celery(wire, max_size=1_000_000)
    assert from_celery(wire).body == bomb  # no change needed: the same bytes go on


hostile_text = st.text(st.characters(exclude_categories=()), max_size=8)  # surrogates too
hostile_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | hostile_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(hostile_text, inner, max_size=3),
    max_leaves=8,
)
some_headers = st.fixed_dictionaries({}, optional={
    "task": hostile_json | names, "id": hostile_json | names, "compression": hostile_json
    | st.just("application/x-gzip"), "retries": hostile_json, "timelimit": hostile_json,
})  # fmt: skip
some_bodies = st.one_of(
    hostile_json,
    st.builds(lambda v: base64.b64encode(json.dumps(v).encode()).decode(), hostile_json),
    st.builds(lambda v: base64.b64encode(zlib.compress(json.dumps(v).encode())).decode(),
              hostile_json),
)  # fmt: skip
envelopes = st.fixed_dictionaries({}, optional={
    "body": some_bodies, "headers": some_headers | hostile_json,
    "content-type": st.sampled_from(["application/json", "application/x-msgpack", ""])
    | hostile_json, "content-encoding": hostile_json,
    "properties": st.fixed_dictionaries({}, optional={
        "body_encoding": st.sampled_from(["base64", "utf-8"]) | hostile_json,
        "delivery_info": hostile_json, "priority": hostile_json, "reply_to": hostile_json,
        "correlation_id": hostile_json, "delivery_tag": hostile_json,
    }) | hostile_json,
})  # fmt: skip


@settings(max_examples=400, deadline=2000, database=None)
@given(
    data=st.binary(max_size=200)
    | st.builds(lambda v: json.dumps(v).encode(), envelopes | hostile_json)
)
def test_any_bytes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        message = from_celery(from_kombu_redis(data))
    except DecodeError:
        return
    Message.decode(message.encode())  # what it gives, celeriac's envelope can carry


# -- kombu reads what celeriac writes -------------------------------------------------------------
def celery_python() -> str | None:
    given = os.environ.get("CELERY_REF_PYTHON")
    for candidate in (given, "/work/celery-ref/.venv/bin/python"):
        if candidate and Path(candidate).exists():
            found = subprocess.run(
                [candidate, "-c", "import celery, kombu"], capture_output=True, check=False
            )
            if found.returncode == 0:
                return candidate
    return None


KOMBU_READS = r"""
import base64, copy, datetime as dt, json, sys, uuid, decimal
from celery import Celery
from celery.worker.request import Request
import kombu.transport.memory
from kombu.transport.virtual.base import Message as KombuMessage

captured = []
kombu.transport.memory.Channel._put = lambda self, q, m, **kw: captured.append(copy.deepcopy(m))
app = Celery("kombu-reads", broker="memory://", set_as_current=False)
app._local.oid = ""  # no reply queue: celeriac names none for these calls

@app.task(name="proj.add")
def add(x, y):
    return x + y

@app.task(name="proj.echo")
def echo(*args, **kwargs):
    return None

ORIGIN = "gen4242@golden-host"
typed = (dt.datetime(2030, 6, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc), dt.date(2030, 6, 1),
         dt.time(12, 30, 15), uuid.UUID("12345678-1234-5678-1234-567812345678"),
         decimal.Decimal("3.14159"), b"plain bytes", b"\xff\x00\xfe")
calls = {
    "plain": lambda: add.apply_async((2, 2), task_id="t-plain"),
    "options": lambda: add.apply_async(
        (1, 2), task_id="t-options", eta=dt.datetime(2020, 6, 1, 12, 30, tzinfo=dt.timezone.utc),
        time_limit=30, soft_time_limit=20, priority=7, retries=3, shadow="shown",
        ignore_result=True, root_id="r-1", parent_id="p-1", headers={"tenant": "acme"}),
    "typed": lambda: echo.apply_async(typed, {"ключ": "значение"}, task_id="t-typed"),
    "compressed": lambda: add.apply_async((1, 2), task_id="t-compressed", compression="zlib"),
}
channel = app.connection_for_write().default_channel
sent = json.load(sys.stdin)
report = {}
for name, call in calls.items():
    call()
    theirs = captured.pop()
    ours = json.loads(sent[name])  # what kombu's Redis transport reads back (its loads)
    read = {}
    for who, raw in (("celery", theirs), ("celeriac", ours)):
        message = KombuMessage(raw, channel=channel)
        headers = dict(message.headers)
        request = Request(message, app=app, task=app.tasks[headers["task"]])
        read[who] = {
            "headers": headers,
            "properties": {k: v for k, v in message.properties.items()
                           if k not in ("delivery_tag", "reply_to")},
            "content": [message.content_type, message.content_encoding],
            "body": repr(message.decode()),  # kombu's serializer registry
            "request": repr([request.id, request.name, request.eta, request.expires,
                             request.time_limits, request.argsrepr, request.kwargsrepr,
                             request.root_id, request.parent_id, request.args, request.kwargs]),
        }
    report[name] = read
print(json.dumps(report))
"""


def test_kombu_reads_what_celeriac_writes_as_celery_writes_it(app: Celery) -> None:
    python = celery_python()
    if python is None:
        pytest.skip("no Python with Celery: set CELERY_REF_PYTHON to one")

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="proj.echo")
    def echo(*args: Any, **kwargs: Any) -> None:
        pass

    eta = dt.datetime(2020, 6, 1, 12, 30, tzinfo=dt.timezone.utc)  # past: sent at once
    calls: dict[str, Callable[[], Any]] = {
        "plain": lambda: add.apply_async((2, 2), task_id="t-plain"),
        "options": lambda: add.apply_async(
            (1, 2), task_id="t-options", eta=eta, time_limit=30, soft_time_limit=20, priority=7,
            retries=3, shadow="shown", ignore_result=True, root_id="r-1", parent_id="p-1",
            headers={"tenant": "acme"},
        ),
        "typed": lambda: echo.apply_async(
            EXPECTED["typed_args"][2], {"ключ": "значение"}, task_id="t-typed"
        ),
        "compressed": lambda: add.apply_async((1, 2), task_id="t-compressed", compression="zlib"),
    }  # fmt: skip
    sent: dict[str, str] = {}
    for name, call in calls.items():
        call()
        [(message, _)] = take_messages(app)
        wire = to_celery(message, routing_key="celery", origin=ORIGIN)
        sent[name] = to_kombu_redis(wire).decode("ascii")
    done = subprocess.run(
        [python, "-c", KOMBU_READS], input=json.dumps(sent), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted(report) == sorted(calls)
    for name, read in report.items():
        ours, theirs = read["celeriac"], read["celery"]
        # celeriac's own header: when the call was sent; Celery's origin is its producer.
        assert isinstance(ours["headers"].pop("sent_at"), float), name
        theirs["headers"]["origin"] = ORIGIN
        assert ours["headers"] == theirs["headers"], name
        assert ours["properties"] == theirs["properties"], name
        assert ours["content"] == theirs["content"], name
        # Celery writes the embed's four entries even when null; celeriac leaves them out.
        assert ours["body"] == theirs["body"].replace(
            "'callbacks': None, 'errbacks': None, 'chain': None, 'chord': None", ""
        ), name  # fmt: skip
        assert ours["request"] == theirs["request"], name


def test_the_codec_imports_no_celery() -> None:
    code = "import sys, celeriac.messages.celery; sys.exit('celery' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
