"""``wire_format = "celery"``: the wire format an app selects with it, how it splits a
payload into AMQP's parts and joins a Celery producer's parts back, the queues as Celery
declares them, and the worker holding a message that arrives before its eta in the broker."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.engine_options import amqp_settings, celery_queues, queue_max_priority
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import DecodeError
from celeriac.messages import task_message
from celeriac.messages.celery import CELERY, from_celery, from_kombu_redis
from celeriac.messages.celery.wire_format import pack, unpack
from celeriac.messages.wire import NATIVE, WireParts
from celeriac.results.celery_records import CELERY_RECORDS
from celeriac.testing import start_worker
from celeriac.worker.execution import seconds_to_eta

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "compat" / "celery_golden"
GOLDENS = {path.stem: json.loads(path.read_text("utf-8")) for path in GOLDEN_DIR.glob("*.json")}


def test_the_setting_selects_celerys_formats() -> None:
    app = Celery("t", broker="memory://", backend="cache+memory://", wire_format="celery")
    try:
        assert app.broker.wire_format is CELERY
        assert app.backend.records is CELERY_RECORDS
    finally:
        app.close()


def test_split_puts_celerys_fields_where_its_protocol_has_them() -> None:
    message = task_message(task_name="proj.add", task_id="t-1", args=(2, 3), priority=4)
    parts = CELERY.split(CELERY.encode(message))
    assert json.loads(parts.body) == [[2, 3], {}, {}]  # the body: [args, kwargs, embed]
    assert parts.headers["task"] == "proj.add" and parts.headers["id"] == "t-1"
    assert parts.headers["lang"] == "py" and parts.headers["timelimit"] == [None, None]
    assert parts.properties["correlation_id"] == "t-1"
    assert parts.properties["content_type"] == "application/json"
    assert parts.properties["content_encoding"] == "utf-8"
    assert parts.properties["priority"] == 4
    assert CELERY.decode(CELERY.join(parts)) == message


@pytest.mark.parametrize("name", sorted(GOLDENS))
def test_join_reads_what_celerys_producer_published(name: str) -> None:
    """Each golden message as an AMQP consumer receives it: body, headers, properties."""
    wire = from_kombu_redis(GOLDENS[name]["redis_payload"].encode())
    received = WireParts(
        wire.body,
        dict(wire.headers),
        {
            **{k: v for k, v in wire.properties.items() if k != "delivery_info"},
            "content_type": wire.content_type,
            "content_encoding": wire.content_encoding,
            "message_type": "ignored",
        },
    )
    assert CELERY.decode(CELERY.join(received)) == from_celery(wire)


def test_join_keeps_header_values_json_has_no_form_for() -> None:
    """An AMQP table may hold bytes, timestamps and decimals: they are carried as text."""
    import decimal

    headers = {
        "task": "proj.add", "id": "t-2", "blob": b"\xff", "at": dt.datetime(2030, 1, 1),
        "n": decimal.Decimal("1.5"),
    }  # fmt: skip
    parts = WireParts(b"[[], {}, {}]", headers, {"content_type": "application/json"})
    message = CELERY.decode(CELERY.join(parts))
    assert message.headers["blob"] == "\ufffd"
    assert message.headers["at"] == "2030-01-01T00:00:00"
    assert message.headers["n"] == 1.5


def test_what_is_not_celerys_frame_is_refused_by_decode_and_carried_by_split() -> None:
    native = NATIVE.encode(task_message(task_name="proj.add", task_id="t-3"))
    with pytest.raises(DecodeError, match="CEL2"):
        CELERY.decode(native)
    assert CELERY.split(native) == WireParts(native)
    with pytest.raises(DecodeError, match="truncated"):
        unpack(pack(from_kombu_redis(GOLDENS["countdown"]["redis_payload"].encode()))[:20])


def test_a_message_without_a_content_type_is_named_as_not_celerys() -> None:
    payload = CELERY.join(WireParts(b"[[], {}, {}]", {"task": "proj.add", "id": "t-4"}, {}))
    with pytest.raises(DecodeError, match="no content type"):
        CELERY.decode(payload)


# -- the queues as Celery declares them --------------------------------------------------------
def _conf(**settings: Any) -> Any:
    return Celery("t", broker="amqp://localhost//", wire_format="celery", **settings).conf


def test_celerys_default_queue() -> None:
    conf = _conf()
    assert celery_queues(conf) == {
        "bindings": {
            "celery": {
                "exchange": "celery", "exchange_type": "direct", "routing_key": "celery",
                "arguments": {},
            }
        },
        "missing_arguments": {},
    }  # fmt: skip
    assert queue_max_priority(conf) is None  # Celery's default: no x-max-priority
    assert amqp_settings(conf)["shared_queues"] == celery_queues(conf)


def test_quorum_and_priorities_as_celery_adds_them() -> None:
    conf = _conf(task_default_queue_type="quorum", task_create_missing_queue_type="quorum")
    spec = celery_queues(conf)
    assert spec["bindings"]["celery"]["arguments"] == {"x-queue-type": "quorum"}
    assert spec["missing_arguments"] == {"x-queue-type": "quorum"}
    conf = _conf(task_queue_max_priority=10)
    spec = celery_queues(conf)
    assert spec["bindings"]["celery"]["arguments"] == {"x-max-priority": 10}
    assert spec["missing_arguments"] == {"x-max-priority": 10}


def test_task_queues_keep_their_exchanges_keys_and_arguments() -> None:
    exchange = SimpleNamespace(name="bx", type="topic")
    kombu_like = SimpleNamespace(
        name="bar", exchange=exchange, routing_key="b.#",
        queue_arguments={"x-queue-type": "quorum"}, max_priority=None,
    )  # fmt: skip
    plain = SimpleNamespace(name="foo", exchange=None, routing_key="", queue_arguments=None)
    conf = _conf(task_queues=[kombu_like, plain, "baz"])
    bindings = celery_queues(conf)["bindings"]
    assert bindings["bar"] == {
        "exchange": "bx", "exchange_type": "topic", "routing_key": "b.#",
        "arguments": {"x-queue-type": "quorum"},
    }  # fmt: skip
    # Celery binds a queue declared without an exchange to the default one, by its key.
    for name in ("foo", "baz"):
        assert bindings[name]["exchange"] == "celery"
        assert bindings[name]["routing_key"] == "celery"
    options = {"d": {"exchange": "dx", "exchange_type": "fanout", "max_priority": 5}}
    assert celery_queues(_conf(task_queues=options))["bindings"]["d"] == {
        "exchange": "dx", "exchange_type": "fanout", "routing_key": "d",
        "arguments": {"x-max-priority": 5},
    }  # fmt: skip


def test_the_native_format_declares_celeriacs_own_queues() -> None:
    conf = Celery("t", broker="amqp://localhost//").conf
    assert "shared_queues" not in amqp_settings(conf)
    assert queue_max_priority(conf) == 9


# -- a message that arrives before its eta ------------------------------------------------------
def test_seconds_to_eta() -> None:
    now = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    request: Any = SimpleNamespace(eta="2030-01-01T00:00:02+00:00")
    assert seconds_to_eta(request, now) == 2.0
    request.eta = "2030-01-01T00:00:02"  # naive: UTC
    assert seconds_to_eta(request, now) == 2.0
    for eta in ("2029-12-31T23:59:59+00:00", None, "2030-01-01T00:00:00.005+00:00"):
        request.eta = eta
        assert seconds_to_eta(request, now) == 0.0


def test_a_message_sent_before_its_eta_waits_in_the_broker() -> None:
    """As a Celery producer sends a countdown: at once, the eta only in the header."""
    app = Celery("t", broker="memory://", backend="cache+memory://")

    @app.task
    def stamp() -> float:
        return time.time()

    eta = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=0.6)
    task_id = str(uuid.uuid4())
    message = task_message(task_name=stamp.name, task_id=task_id, eta=eta)
    app.broker.publish(OutboundMessage("celery", NATIVE.encode(message), task_id))
    try:
        with start_worker(app):
            ran = app.AsyncResult(task_id).get(timeout=10)
        assert ran >= eta.timestamp() - 0.01, "ran before its eta"
    finally:
        app.close()
