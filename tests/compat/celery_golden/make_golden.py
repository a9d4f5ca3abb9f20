"""Write the golden task messages: what Celery 5.7's own producer puts on a queue.

Run it with a Python that has Celery (not the project's venv)::

    /work/celery-ref/.venv/bin/python tests/compat/celery_golden/make_golden.py

Each call below is made with a real Celery app over kombu's ``memory://`` transport. The
transport's ``_put`` is where kombu hands over the finished message: the dict that its
Redis transport serializes with ``kombu.utils.json.dumps`` and LPUSHes (the same virtual
channel code builds it for both). That dict is recorded as it is, with the exact text
the Redis transport would push, next to the parts a reader wants to compare: headers,
properties, content type and encoding, and the body (decoded when it is JSON).

The run is made repeatable: task ids, group ids and delivery tags come from counters,
the clock is fixed, the origin and the reply-to queue are fixed strings, and the hash
seed is fixed (Celery lists stamp names from a set), so running it again writes the same
files. A chord's body is sent by the result backend once its header is done; here it is
sent as the backend sends it, from the signature a header member carries.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import decimal
import itertools
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import celery
import celery.app.amqp
import celery.app.base
import celery.app.task
import celery.canvas
import kombu
import kombu.compression
import kombu.transport.memory
import kombu.transport.virtual.base
from celery import Celery, chain, chord, group
from kombu.utils.json import dumps as kombu_dumps
from kombu.utils.json import loads as kombu_loads

HERE = Path(__file__).resolve().parent
NOW = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
ORIGIN = "gen4242@golden-host"
REPLY_TO = "0f3c9a5e-7b1d-3c55-9e2a-5d8f4b6a1c00"  # the app's thread oid, fixed

_ids = itertools.count(1)
_tags = itertools.count(1)


def _next_id() -> str:
    return str(uuid.UUID(int=0x6F1D_0000_0000_4000_8000_0000_0000_0000 + next(_ids)))


def _next_tag(self: Any) -> str:
    return f"00000000-0000-4000-8000-{next(_tags):012d}"


# Repeatable ids, clock, origin and reply-to.
for module in (celery.app.base, celery.app.task, celery.canvas):
    module.uuid = _next_id  # type: ignore[attr-defined]
celery.app.amqp.anon_nodename = lambda *a, **k: ORIGIN  # type: ignore[assignment]
kombu.transport.virtual.base.Channel._next_delivery_tag = _next_tag  # type: ignore[method-assign]

captured: list[tuple[str, dict[str, Any]]] = []


def _put(self: Any, queue: str, message: dict[str, Any], **kwargs: Any) -> None:
    captured.append((queue, copy.deepcopy(message)))


kombu.transport.memory.Channel._put = _put  # type: ignore[method-assign]


class GoldenApp(Celery):
    def now(self) -> dt.datetime:
        return NOW


def make_app(**conf: Any) -> Celery:
    app = GoldenApp("golden", broker="memory://", backend="cache+memory://", set_as_current=True)
    app.conf.update(conf)
    app._local.oid = REPLY_TO
    return app


app = make_app()


@app.task(name="proj.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="proj.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="proj.tsum")
def tsum(values: list[int]) -> int:
    return sum(values)


@app.task(name="proj.on_error")
def on_error(request: Any, exc: Any, traceback: Any) -> None:
    pass


@app.task(name="proj.echo")
def echo(*args: Any, **kwargs: Any) -> Any:
    return args, kwargs


def tid(name: str) -> str:
    """A readable, fixed task id for a golden's first message."""
    return f"{name}-0000-4000-8000-000000000000"


def send(call: Any) -> list[tuple[str, dict[str, Any]]]:
    before = len(captured)
    call()
    return captured[before:]


def shapes() -> dict[str, tuple[str, Any]]:
    """name -> (the call, as text; a function making it). Each writes one file per message
    sent (a group or chord writes one per member)."""
    return {
        "plain": ("add.apply_async((2, 2))", lambda: add.apply_async((2, 2), task_id=tid("plain"))),
        "kwargs": (
            "add.apply_async(kwargs={'x': 1, 'y': 2})",
            lambda: add.apply_async(kwargs={"x": 1, "y": 2}, task_id=tid("kwargs")),
        ),
        "eta": (
            "add.apply_async((1, 2), eta=datetime(2030, 6, 1, 12, 30, tzinfo=utc))",
            lambda: add.apply_async(
                (1, 2),
                eta=dt.datetime(2030, 6, 1, 12, 30, tzinfo=dt.timezone.utc),
                task_id=tid("eta"),
            ),
        ),
        "countdown": (
            "add.apply_async((1, 2), countdown=30)  # the clock fixed at 2030-01-02T03:04:05Z",
            lambda: add.apply_async((1, 2), countdown=30, task_id=tid("countdown")),
        ),
        "expires": (
            "add.apply_async((1, 2), expires=60)  # the clock fixed at 2030-01-02T03:04:05Z",
            lambda: add.apply_async((1, 2), expires=60, task_id=tid("expires")),
        ),
        "time_limits": (
            "add.apply_async((1, 2), time_limit=30, soft_time_limit=20)",
            lambda: add.apply_async(
                (1, 2), time_limit=30, soft_time_limit=20, task_id=tid("timelimits")
            ),
        ),
        "priority": (
            "add.apply_async((1, 2), priority=7)",
            lambda: add.apply_async((1, 2), priority=7, task_id=tid("priority")),
        ),
        "retries": (
            "add.apply_async((1, 2), retries=3)",
            lambda: add.apply_async((1, 2), retries=3, task_id=tid("retries")),
        ),
        "shadow": (
            "add.apply_async((1, 2), shadow='add-as-shown')",
            lambda: add.apply_async((1, 2), shadow="add-as-shown", task_id=tid("shadow")),
        ),
        "ignore_result": (
            "add.apply_async((1, 2), ignore_result=True)",
            lambda: add.apply_async((1, 2), ignore_result=True, task_id=tid("ignoreresult")),
        ),
        "reply_to": (
            "add.apply_async((1, 2), reply_to='replies.q')",
            lambda: add.apply_async((1, 2), reply_to="replies.q", task_id=tid("replyto")),
        ),
        "root_parent": (
            "add.apply_async((1, 2), root_id=..., parent_id=...)",
            lambda: add.apply_async(
                (1, 2), root_id=tid("rootid"), parent_id=tid("parentid"), task_id=tid("child")
            ),
        ),
        "link": (
            "add.apply_async((1, 2), link=mul.s(10), link_error=on_error.s())",
            lambda: add.apply_async(
                (1, 2), link=mul.s(10), link_error=on_error.s(), task_id=tid("link")
            ),
        ),
        "stamped": (
            "sig = add.s(1, 2); sig.stamp(tenant='acme', wave=3); sig.apply_async()",
            lambda: _stamped(),
        ),
        "unicode": (
            "echo.apply_async(('héllo ☃ 🐍', 'ß'), {'ключ': 'значение', 'emoji': '✓'})",
            lambda: echo.apply_async(
                ("héllo ☃ 🐍", "ß"), {"ключ": "значение", "emoji": "✓"}, task_id=tid("unicode")
            ),
        ),
        "typed_args": (
            "echo.apply_async((datetime, date, time, UUID, Decimal, b'bytes', b'\\xff\\x00'))",
            lambda: echo.apply_async(
                (
                    dt.datetime(2030, 6, 1, 12, 30, 15, 250000, tzinfo=dt.timezone.utc),
                    dt.date(2030, 6, 1),
                    dt.time(12, 30, 15),
                    uuid.UUID("12345678-1234-5678-1234-567812345678"),
                    decimal.Decimal("3.14159"),
                    b"plain bytes",
                    b"\xff\x00\xfe",
                ),
                task_id=tid("typedargs"),
            ),
        ),
        "custom_headers": (
            "add.apply_async((1, 2), headers={'tenant': 'acme', 'trace': [1, 2]})",
            lambda: add.apply_async(
                (1, 2), headers={"tenant": "acme", "trace": [1, 2]}, task_id=tid("headers")
            ),
        ),
        "argsrepr": (
            "add.apply_async(('secret', 2), argsrepr='(<hidden>, 2)', kwargsrepr='{}')",
            lambda: add.apply_async(
                ("secret", 2), argsrepr="(<hidden>, 2)", kwargsrepr="{}", task_id=tid("argsrepr")
            ),
        ),
        "replaced": (
            "add.apply_async((1, 2), replaced_task_nesting=2)",
            lambda: add.apply_async((1, 2), replaced_task_nesting=2, task_id=tid("replaced")),
        ),
        "compressed": (
            "add.apply_async((1, 2), compression='zlib')",
            lambda: add.apply_async((1, 2), compression="zlib", task_id=tid("compressed")),
        ),
        "pickle": (
            "add.apply_async((1, 2), serializer='pickle')",
            lambda: add.apply_async((1, 2), serializer="pickle", task_id=tid("pickle")),
        ),
        "chain": (
            "chain(add.s(1, 2), mul.s(10), tsum.si([1])).apply_async()",
            lambda: chain(add.s(1, 2), mul.s(10), tsum.si([1])).apply_async(),
        ),
        "group": (
            "group(add.s(1, 1), add.s(2, 2)).apply_async()",
            lambda: group(add.s(1, 1), add.s(2, 2)).apply_async(),
        ),
        "chord_header": (
            "chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async()",
            lambda: chord([add.s(1, 1), add.s(2, 2)], tsum.s()).apply_async(),
        ),
        "nested_canvas": (
            "chain(add.s(1, 1), group(mul.s(2), mul.s(3)), tsum.s()).apply_async()",
            lambda: chain(add.s(1, 1), group(mul.s(2), mul.s(3)), tsum.s()).apply_async(),
        ),
    }


def _stamped() -> None:
    sig = add.s(1, 2).set(task_id=tid("stamped"))
    sig.stamp(tenant="acme", wave=3)
    sig.apply_async()


def chord_body(header_member: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The chord body's message, sent as a result backend sends it once the header is
    done: the body signature the header member carries, called with the results."""
    body = decoded_body(header_member)
    assert isinstance(body, list), body
    callback = celery.canvas.maybe_signature(body[2]["chord"], app=app)
    return send(lambda: callback.delay([2, 4]))


def decoded_body(message: dict[str, Any]) -> Any:
    raw = base64.b64decode(message["body"])
    if message["headers"].get("compression"):
        raw = kombu.compression.decompress(raw, message["headers"]["compression"])
    if message["content-type"] == "application/json":
        return json.loads(raw.decode("utf-8"))  # the JSON as it is (markers left in place)
    return None


def golden(name: str, call: str, queue: str, message: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "call": call,
        "celery": celery.__version__,
        "kombu": kombu.__version__,
        "queue": queue,
        # What kombu's Redis transport LPUSHes, exactly (kombu.utils.json.dumps).
        "redis_payload": kombu_dumps(message),
        # The same, opened up.
        "headers": message["headers"],
        "properties": message["properties"],
        "content_type": message["content-type"],
        "content_encoding": message["content-encoding"],
        "body_base64": message["body"],
        "body_json": decoded_body(message),
    }


def protocol_1() -> list[tuple[str, dict[str, Any]]]:
    """A message from a producer still on task protocol 1 (``task_protocol = 1``)."""
    old = make_app(task_protocol=1)

    @old.task(name="proj.add")
    def add1(x: int, y: int) -> int:
        return x + y

    return send(
        lambda: add1.apply_async(
            (1, 2),
            eta=dt.datetime(2030, 6, 1, 12, 30, tzinfo=dt.timezone.utc),
            expires=dt.datetime(2030, 6, 2, tzinfo=dt.timezone.utc),
            retries=1,
            time_limit=30,
            soft_time_limit=20,
            link=add1.s(5),
            task_id=tid("protocolone"),
        )
    )


def main() -> None:
    written = []
    for path in HERE.glob("*.json"):
        path.unlink()
    outputs: list[tuple[str, str, list[tuple[str, dict[str, Any]]]]] = []
    for name, (call, make) in shapes().items():
        outputs.append((name, call, send(make)))
    header = dict(next(out for out in outputs if out[0] == "chord_header")[2][0][1])
    outputs.append(
        (
            "chord_body",
            "the chord body, as the result backend sends it: "
            "signature(embed['chord']).delay([2, 4])",
            chord_body(header),
        )
    )
    outputs.append(("protocol1", "add.apply_async(...) with task_protocol = 1", protocol_1()))
    for name, call, messages in outputs:
        assert messages, f"{name}: nothing was sent"
        for index, (queue, message) in enumerate(messages):
            label = name if len(messages) == 1 else f"{name}_{index + 1}"
            data = golden(label, call, queue, message)
            assert kombu_loads(data["redis_payload"]) is not None
            path = HERE / f"{label}.json"
            path.write_text(
                json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False) + "\n",
                encoding="utf-8",
            )
            written.append(path.name)
    print(f"wrote {len(written)} files to {HERE}: {', '.join(sorted(written))}")


if __name__ == "__main__":
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Celery builds stamped_headers from a set: a fixed hash seed fixes its order.
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"}
        )
    main()
