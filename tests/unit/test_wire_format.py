"""Wire formats: celeriac's envelope stays byte for byte what it was, an app selects its
format by name, and the producer, the worker and the result store go through theirs."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import DecodeError, ImproperlyConfigured
from celeriac.messages import Message
from celeriac.messages.protocol import task_message
from celeriac.messages.wire import NATIVE, WireFormat
from celeriac.results.base import NATIVE_RECORDS, RecordFormat, TaskMeta
from celeriac.results.memory import MemoryBackend
from celeriac.testing import drain

# A sample call's envelope as celeriac writes it: workers of either version read what the
# other sends, so the framing and the headers' names and types must never change. (The
# text of kwargsrepr is Celery's saferepr since task_repr_maxlevels: b'00ff', not an
# escaped repr; it is shown, never parsed.) The content type and encoding are the
# defaults, so they are left out.
GOLDEN = (
    b'CLR1\x00\x00\x01\x92{"h":{"task":"proj.add","id":"0b8d2c1e-0000-4000-8000-'
    b'000000000001","eta":"2030-01-02T03:04:05+00:00","expires":"203'
    b'0-01-03T00:00:00+00:00","group":"g-1","group_index":0,"retries'
    b'":1,"timelimit":[10,5],"root_id":"r-1","parent_id":"p-1","args'
    b"repr\":\"(2, 'tr\xc3\xaas')\",\"kwargsrepr\":\"{'z': None, 'blob': b'00ff'"
    b'}","ignore_result":true,"idempotency_key":"k-1","tenant":"acme'
    b'"},"p":{"priority":7,"reply_to":"rq"}}'
    b'[[2,"tr\xc3\xaas"],{"z":null,"blob":{"__type__":"bytes"'
    b',"__value__":"AP8="}},{"callbacks":[{"task":"proj.cb","args":['
    b'],"kwargs":{},"options":{}}]}]'
)
# The same call as earlier versions wrote it, the defaults spelled out: still read alike.
GOLDEN_WITH_DEFAULTS = (
    b'CLR1\x00\x00\x01\xb7{"h":{"task":"proj.add","id":"0b8d2c1e-0000-4000-8000-'
    b'000000000001","eta":"2030-01-02T03:04:05+00:00","expires":"203'
    b'0-01-03T00:00:00+00:00","group":"g-1","group_index":0,"retries'
    b'":1,"timelimit":[10,5],"root_id":"r-1","parent_id":"p-1","args'
    b"repr\":\"(2, 'tr\xc3\xaas')\",\"kwargsrepr\":\"{'z': None, 'blob': b'00ff'"
    b'}","ignore_result":true,"idempotency_key":"k-1","tenant":"acme'
    b'"},"p":{"priority":7,"reply_to":"rq"},"ct":"application/json",'
    b'"ce":"utf-8"}[[2,"tr\xc3\xaas"],{"z":null,"blob":{"__type__":"bytes"'
    b',"__value__":"AP8="}},{"callbacks":[{"task":"proj.cb","args":['
    b'],"kwargs":{},"options":{}}]}]'
)


def _sample() -> Message:
    utc = dt.timezone.utc
    return task_message(
        task_name="proj.add",
        task_id="0b8d2c1e-0000-4000-8000-000000000001",
        args=(2, "três"),
        kwargs={"z": None, "blob": b"\x00\xff"},
        eta=dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=utc),
        expires=dt.datetime(2030, 1, 3, tzinfo=utc),
        retries=1,
        root_id="r-1",
        parent_id="p-1",
        group_id="g-1",
        group_index=0,
        time_limit=10,
        soft_time_limit=5,
        ignore_result=True,
        callbacks=[{"task": "proj.cb", "args": [], "kwargs": {}, "options": {}}],
        priority=7,
        reply_to="rq",
        extra_headers={"tenant": "acme"},
        idempotency_key="k-1",
    )


def test_the_native_format_writes_the_same_bytes_as_before() -> None:
    assert NATIVE.encode(_sample()) == GOLDEN
    assert NATIVE.decode(GOLDEN) == _sample()


def test_a_message_with_the_defaults_spelled_out_reads_the_same() -> None:
    assert NATIVE.decode(GOLDEN_WITH_DEFAULTS) == _sample()


def test_only_what_differs_from_the_defaults_is_written() -> None:
    plain = task_message(task_name="proj.ping", task_id="t-1")
    assert (
        NATIVE.encode(plain)
        == b'CLR1\x00\x00\x00\x25{"h":{"task":"proj.ping","id":"t-1"}}[[],{},{}]'
    )
    pickled = task_message(task_name="proj.ping", task_id="t-2", serializer="pickle")
    meta = NATIVE.encode(pickled)
    assert b'"ct":"application/x-python-serialize","ce":"binary"}' in meta
    assert NATIVE.decode(meta) == pickled


def test_an_app_hands_the_native_formats_to_its_engines_by_default() -> None:
    app = Celery("t", broker="memory://", backend="cache+memory://")
    try:
        assert app.conf.wire_format == "celeriac"
        assert app.broker.wire_format is NATIVE
        assert app.backend.records is NATIVE_RECORDS
    finally:
        app.close()


@pytest.mark.parametrize("engine", ["broker", "backend"])
def test_an_unknown_wire_format_names_the_choices(engine: str) -> None:
    app = Celery("t", broker="memory://", backend="cache+memory://", wire_format="kombu")
    try:
        with pytest.raises(ImproperlyConfigured, match=r"wire_format is 'kombu'.*'celeriac'"):
            getattr(app, engine)
    finally:
        app.close()


class Reversed(WireFormat):
    """Another format: the envelope back to front (no ``CLR1`` prefix to find)."""

    name = "reversed"

    def encode(self, message: Message) -> bytes:
        return message.encode()[::-1]

    def decode(self, payload: bytes) -> Message:
        return Message.decode(payload[::-1])


def test_producer_and_worker_use_the_brokers_format() -> None:
    codec = Reversed()
    app = Celery("t", broker=MemoryBroker(wire_format=codec), backend="cache+memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    async def peek() -> bytes:
        [delivery] = await app.broker.fetch(["celery"], 1, timeout=0)
        await delivery.requeue()
        return delivery.payload

    try:
        result = add.delay(2, 3)
        payload = asyncio.run(peek())
        assert payload == codec.encode(Message.decode(payload[::-1]))
        with pytest.raises(DecodeError, match="CLR1"):
            NATIVE.decode(payload)  # not the native bytes: the producer used the codec
        assert drain(app) == 1
        assert result.get(timeout=1) == 5  # and the worker read them back with it
    finally:
        app.close()


class Marked(RecordFormat):
    """Another record format: its own key names, records prefixed with a marker."""

    name = "marked"

    def task_key(self, task_id: str) -> str:
        return f"t/{task_id}"

    def group_key(self, group_id: str) -> str:
        return f"g/{group_id}"

    def encode(self, meta: TaskMeta, serializer: str) -> bytes:
        return b"MARK" + super().encode(meta, serializer)

    def decode(self, raw: bytes, accept: frozenset[str], serializer: str = "json") -> TaskMeta:
        if not raw.startswith(b"MARK"):
            raise DecodeError("not a marked record")
        return super().decode(raw[4:], accept, serializer)


def test_a_result_store_keys_and_frames_records_as_its_format_says() -> None:
    backend = MemoryBackend(record_format=Marked())
    backend.mark_as_done("id-1", {"n": 1})
    backend.save_group("grp", ["id-1"])
    raw: Any = backend._get("t/id-1")
    assert raw.startswith(b"MARK") and backend._get("task:id-1") is None
    assert backend.wait_for("id-1", timeout=1)["result"] == {"n": 1}
    assert backend.restore_group("grp") == ["id-1"]
    assert backend._get("g/grp") is not None
