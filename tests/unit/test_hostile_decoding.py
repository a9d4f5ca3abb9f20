"""Property tests: every decoder between broker bytes and a running task, fed hostile input.

For any bytes and any JSON-ish structure, decoding returns a valid message or raises
``DecodeError`` (``InvalidTaskError`` and ``MessageTooLarge`` are kinds of it; a refused
content type is ``ContentDisallowed``) with a reason, never another exception; the
worker's ``prepare`` turns every payload into a job or a refusal with a reason; nothing
hangs and no payload makes a decoder hold more memory than a bound of its size.
"""

from __future__ import annotations

import bz2
import datetime as dt
import json
import lzma
import math
import os
import struct
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason, Delivery
from celeriac.exceptions import ContentDisallowed, DecodeError, InvalidTaskError, MessageTooLarge
from celeriac.messages import Message, check_body, check_envelope, loads, revocation, task_message
from celeriac.messages.compression import decompress
from celeriac.messages.envelope import MAGIC
from celeriac.messages.validation import HEADER_RULES, PROPERTY_RULES
from celeriac.trace import Outcome
from celeriac.worker.execution import HeldJob, Refusal, prepare, run

# CELERIAC_FUZZ_EXAMPLES raises the examples per property for a longer search.
FUZZ = settings(
    max_examples=int(os.environ.get("CELERIAC_FUZZ_EXAMPLES", "100")),
    deadline=2000,  # milliseconds per example: a decoder that hangs fails here
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
ACCEPT = frozenset({"application/json", "application/x-msgpack"})
COMPRESSIONS = ["application/x-gzip", "application/x-bz2", "application/x-lzma"]
COMPRESSORS: dict[str, Callable[[bytes], bytes]] = dict(
    # (lzma's preset 0: the default allocates ~90 MB per call, slow for hundreds of calls)
    zip(
        COMPRESSIONS,
        (zlib.compress, bz2.compress, lambda b: lzma.compress(b, preset=0)),
        strict=True,
    )
)
LIMIT = 64 * 1024  # the test app's task_message_max_size

# Text with every code point, unpaired surrogates included (JSON can escape them).
texts = st.text(st.characters(exclude_categories=()), max_size=12)
scalars = (
    st.none() | st.booleans() | st.integers() | st.floats() | texts
    | st.sampled_from(["2024-05-01T12:30:00+00:00", "0001-01-01T00:00:00+23:59",
                       "9999-12-31T23:59:59-23:59", "2024-05-01T12:30:00Z", "", "t.echo"])
)  # fmt: skip
jsonish = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
signatures = st.fixed_dictionaries(
    {"task": st.sampled_from(["t.echo", "", 5])},
    optional={"args": jsonish, "kwargs": jsonish, "options": jsonish,
              "subtask_type": st.sampled_from(["chain", "group", "chord", None, 3]),
              "immutable": jsonish, "chord_size": jsonish},
)  # fmt: skip
embeds = st.dictionaries(
    st.sampled_from(["callbacks", "errbacks", "chain", "chord"]),
    jsonish | signatures | st.lists(signatures, max_size=3),
    max_size=3,
)
bodies = st.one_of(
    st.tuples(st.lists(jsonish, max_size=4), st.dictionaries(texts, jsonish, max_size=3),
              st.just({})).map(list),
    st.tuples(st.lists(jsonish, max_size=4), st.dictionaries(texts, jsonish, max_size=3),
              embeds).map(list),
    st.tuples(jsonish, jsonish, jsonish | embeds).map(list),
    jsonish,
)  # fmt: skip
ISO = st.sampled_from(
    [
        "2024-05-01T12:30:00+00:00",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "2024-05-01T12:30:00Z",
        "2024-05-01",
    ]
)
seconds = st.none() | st.floats(min_value=0) | st.integers(min_value=0)
# What each header plausibly holds, so that many fuzzed messages get past the checks.
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "eta": ISO, "expires": ISO, "retries": st.integers(0, 10**30),
    "group_index": st.integers(0, 10**30), "timelimit": st.tuples(seconds, seconds).map(list),
    "ignore_result": st.booleans(), "stamped_headers": st.lists(texts.filter(bool), max_size=3),
    "stamps": st.dictionaries(texts, jsonish, max_size=3),
    "compression": st.sampled_from(COMPRESSIONS),
}  # fmt: skip
known_headers = st.sampled_from(sorted({*HEADER_RULES, "compression"}))


def mostly(draw: st.DrawFn, usual: st.SearchStrategy[Any]) -> Any:
    """A value from ``usual`` four times in five, else any JSON-ish value."""
    return draw(jsonish if draw(st.integers(0, 4)) == 4 else usual)


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any]:
    head = {
        "id": mostly(draw, st.just("task-1")),
        "task": mostly(draw, st.sampled_from(["t.echo", "t.add"])),
    }
    for name in draw(st.lists(known_headers | texts, max_size=5)):
        head[name] = mostly(draw, PLAUSIBLE.get(name, texts))
    return head


properties = st.dictionaries(st.sampled_from(sorted(PROPERTY_RULES)) | texts, jsonish, max_size=3)


def frame(meta: bytes, body: bytes) -> bytes:
    return MAGIC + struct.pack(">I", len(meta)) + meta + body


def dump(value: Any) -> bytes:
    # ensure_ascii: an unpaired surrogate travels as an escape, as another producer may send
    return json.dumps(value, ensure_ascii=True).encode()


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Envelopes built from fuzzed parts, sometimes compressed, sometimes cut or flipped."""
    head = draw(headers())
    body = dump(draw(bodies)) if draw(st.integers(0, 4)) else draw(st.binary(max_size=64))
    method = head.get("compression")
    if isinstance(method, str) and method in COMPRESSORS and draw(st.booleans()):
        body = COMPRESSORS[method](body)
    elif draw(st.integers(0, 5)) == 0:
        head["compression"] = method = draw(st.sampled_from(COMPRESSIONS))
        body = COMPRESSORS[method](body) if draw(st.booleans()) else draw(st.binary())
    meta: dict[str, Any] = {"h": head, "p": draw(properties)}
    if draw(st.booleans()):
        meta["ct"] = mostly(draw, st.sampled_from(sorted(ACCEPT)))
    data = frame(dump(meta), body)
    cut = draw(st.sampled_from(["keep", "keep", "keep", "truncate", "flip"]))
    if cut == "truncate":  # anywhere
        data = data[: draw(st.integers(0, len(data)))]
    elif cut == "flip":  # one byte changed
        at = draw(st.integers(0, len(data) - 1))
        data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
    return data


@pytest.fixture(scope="module")
def app() -> Iterator[Celery]:
    app = Celery("hostile", broker="memory://", backend="cache+memory://")
    app.conf.task_message_max_size = LIMIT
    app.conf.accept_content = ["json", "msgpack"]

    @app.task(name="t.echo")
    def echo(*args: Any, **kwargs: Any) -> int:
        return len(args) + len(kwargs)

    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    app.close()


def delivery(app: Celery, payload: bytes) -> Delivery:
    return Delivery(app.broker, "celery", payload, "task-1", 1, 0, "token")


def check_refusal_or_run(app: Celery, payload: bytes) -> HeldJob | Refusal:
    """The worker's property: a job that runs to an outcome, or a refusal with a reason
    that a broker, a log and a result store can all take (valid UTF-8)."""
    prepared = prepare(app, delivery(app, payload))
    if isinstance(prepared, Refusal):
        assert isinstance(prepared.reason, DeadLetterReason)
        assert prepared.detail and prepared.detail.encode("utf-8")
        assert prepared.task_id is None or prepared.task_id.encode("utf-8")
        return prepared
    assert isinstance(run(prepared), Outcome)  # the task body may fail; running may not
    return prepared


# -- the envelope ---------------------------------------------------------------------------
@FUZZ
@given(st.binary(max_size=200))
@example(frame(b"[" * 100_000, b""))  # nesting past the parser's limit: RecursionError
@example(frame(b'{"h":{"id":"1","task":"t","x":"\\ud800"}}', b""))  # unpaired surrogate
@example(frame(b'{"h":{"id":"1","task":"t","x":"\xed\xa0\x80"}}', b""))  # one encoded raw
@example(frame(b'{"h":{"id":"1","task":"t"},"ct":["x"]}', b""))  # a content type not a string
@example(MAGIC + b"\xff\xff\xff\xff")  # a metadata length past the end
def test_the_envelope_decodes_or_raises_decode_error(data: bytes) -> None:
    try:
        message = Message.decode(data)
    except DecodeError as exc:
        assert str(exc)
        return
    assert isinstance(message.headers, dict) and isinstance(message.properties, dict)
    assert message.id and message.task_name and isinstance(message.content_type, str)
    json.dumps(message.headers, ensure_ascii=False).encode("utf-8")  # writable back as UTF-8


@FUZZ
@given(payloads())
def test_fuzzed_envelopes_decode_or_raise_decode_error(data: bytes) -> None:
    try:
        message = Message.decode(data)
    except DecodeError as exc:
        assert str(exc)
        return
    json.dumps(message.headers, ensure_ascii=False).encode("utf-8")


# -- serializers, compression, field checks -----------------------------------------------
@FUZZ
@given(st.binary(max_size=200) | jsonish.map(dump), st.sampled_from(sorted(ACCEPT)))
@example(b"[" * 100_000, "application/json")
@example(b'{"__type__": "datetime", "__value__": 5}', "application/json")
@example(b'{"__type__": "bytes", "__value__": "!"}', "application/json")
@example(b"1" * 5000, "application/json")  # past Python's digit limit for int()
@example(b"\xdd\xff\xff\xff\xff", "application/x-msgpack")  # an array claiming 4 G items
def test_a_body_deserializes_or_raises_decode_error(data: bytes, content_type: str) -> None:
    try:
        loads(data, content_type, ACCEPT)
    except DecodeError as exc:
        assert str(exc)


@FUZZ
@given(st.binary(max_size=200), st.sampled_from(["application/x-python-serialize", "text/x"]))
def test_a_refused_content_type_is_never_read(data: bytes, content_type: str) -> None:
    with pytest.raises((ContentDisallowed, DecodeError)):
        loads(data, content_type, ACCEPT)


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([*COMPRESSIONS, "application/x-unknown"]))
def test_decompressing_returns_bytes_within_the_limit_or_raises(data: bytes, method: str) -> None:
    try:
        restored = decompress(data, method, 1000)
    except DecodeError as exc:
        assert str(exc)
        return
    assert len(restored) <= 1000


@pytest.mark.parametrize("method", COMPRESSIONS)
def test_a_compression_bomb_is_refused_without_filling_memory(method: str) -> None:
    bomb = COMPRESSORS[method](bytes(50_000_000))  # 50 MB of zeros in at most 50 kB
    tracemalloc.start()
    try:
        with pytest.raises(MessageTooLarge, match="task_message_max_size"):
            decompress(bomb, method, LIMIT)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    workspace = 10 * 2**20 if method == "application/x-lzma" else 0  # its dictionary
    assert peak < 8 * LIMIT + len(bomb) + workspace, peak


@FUZZ
@given(headers(), properties)
def test_header_checks_pass_or_raise_invalid_task_error(head: Any, props: Any) -> None:
    try:
        check_envelope(head, props)
    except InvalidTaskError as exc:
        assert str(exc)


@FUZZ
@given(bodies)
@example([[], {}, {"chain": [{"task": "t", "options": {"chain": "x"}}]}])
@example([[], {1: 2}, {}])  # (msgpack keeps non-string keys)
def test_body_checks_pass_or_raise_invalid_task_error(body: Any) -> None:
    try:
        args, kwargs, embed = check_body(body)
    except InvalidTaskError as exc:
        assert str(exc)
        return
    assert isinstance(args, (list, tuple)) and isinstance(kwargs, dict)
    assert all(isinstance(key, str) for key in kwargs) and isinstance(embed, dict)


# -- the worker's whole path ----------------------------------------------------------------
@FUZZ
@given(payloads())
@example(
    frame(
        dump(
            {
                "h": {
                    "id": "x",
                    "task": "t.echo",
                    "eta": "0001-01-01T00:00:00+23:59",
                    "expires": "9999-12-31T23:59:59-23:59",
                }
            }
        ),
        dump([[], {}, {}]),
    )
)
@example(frame(dump({"h": {"id": "x", "task": "\ud800"}}), b""))
@example(
    frame(
        dump({"h": {"id": "x", "task": "t.echo", "compression": "application/x-gzip"}}),
        zlib.compress(dump([["0" * 2 * LIMIT], {}, {}])),
    )
)
def test_the_worker_runs_or_refuses_every_payload(app: Celery, data: bytes) -> None:
    check_refusal_or_run(app, data)


@FUZZ
@given(st.binary(max_size=300))
def test_the_worker_runs_or_refuses_any_bytes(app: Celery, data: bytes) -> None:
    check_refusal_or_run(app, data)


@FUZZ
@given(
    st.lists(
        jsonish.filter(lambda v: "NaN" not in json.dumps(v) and "Infinity" not in json.dumps(v)),
        max_size=3,
    ),
    st.sampled_from([None, *COMPRESSIONS]),
    st.sampled_from(["json", "msgpack"]),
)
def test_every_valid_call_is_run_not_refused(
    app: Celery, args: list[Any], compression: str | None, serializer: str
) -> None:
    try:
        message = task_message(
            task_name="t.echo", task_id="valid-1", args=args, serializer=serializer,
            compression=compression, eta=dt.datetime(2024, 5, 1, tzinfo=dt.timezone.utc),
        )  # fmt: skip
    except Exception:  # (a value the serializer cannot write: the producer says so)
        return
    prepared = check_refusal_or_run(app, message.encode())
    assert isinstance(prepared, HeldJob), getattr(prepared, "detail", None)
    assert prepared.request.args == tuple(args) or serializer == "msgpack"


def test_an_oversized_payload_is_refused_unread(app: Celery) -> None:
    message = task_message(task_name="t.echo", task_id="big-1", args=["x" * 2 * LIMIT])
    payload = message.encode()
    tracemalloc.start()
    try:
        refusal = prepare(app, delivery(app, payload))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert isinstance(refusal, Refusal) and refusal.reason is DeadLetterReason.OVERSIZED
    assert f"over this worker's limit of {LIMIT} bytes" in refusal.detail
    assert "task_message_max_size" in refusal.detail
    assert peak < LIMIT  # not even copied
    assert refusal.task_id == "task-1"  # the broker's message id: a waiting caller learns why


def test_a_body_that_decompresses_past_the_limit_is_oversized(app: Celery) -> None:
    body = zlib.compress(dump([["0" * 2 * LIMIT], {}, {}]))
    meta = dump({"h": {"id": "z-1", "task": "t.echo", "compression": "application/x-gzip"}})
    refusal = prepare(app, delivery(app, frame(meta, body)))
    assert isinstance(refusal, Refusal) and refusal.reason is DeadLetterReason.OVERSIZED
    assert refusal.task_id == "z-1" and "decompresses to more than" in refusal.detail


# -- revocations: the channel message that decides whether a task runs ---------------------
@FUZZ
@given(st.binary(max_size=200) | jsonish.map(dump) | jsonish.map(lambda v: dump({"revoke": v})))
@example(b'{"revoke": ["a"], "ttl": NaN}')  # would never end: every comparison is false
@example(b'{"revoke": ["a"], "ttl": 1, "at": Infinity}')
@example(b'{"revoke": ["a"], "ttl": 1e999}')
@example(b'{"revoke": ["a"], "signal": {"x": 1}}')
@example(b'{"revoke": ' + b"[" * 100_000)
def test_a_revocation_notice_decodes_or_is_ignored(data: bytes) -> None:
    notice = revocation.decode(data)
    if notice is not None:
        assert math.isfinite(notice.ttl) and math.isfinite(notice.sent_at)
        assert all(isinstance(i, str) for i in notice.task_ids)
        assert isinstance(notice.signal, str) and isinstance(notice.terminate, bool)


@FUZZ
@given(texts.map(lambda t: revocation.STAMP_PREFIX + "[" + t), st.dictionaries(texts, jsonish))
@example(revocation.STAMP_PREFIX + "[" * 100_000, {})
def test_stamps_read_as_stamps_or_nothing(key: str, stamps: dict[str, Any]) -> None:
    stamp = revocation.parse_stamp_key(key)
    assert stamp is None or (isinstance(stamp[0], str) and isinstance(stamp[1], str))
    assert all(isinstance(value, str) for _, value in revocation.stamps_of(stamps))
