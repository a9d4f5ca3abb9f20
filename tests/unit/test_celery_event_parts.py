"""Events in Celery's format: what a celeriac worker with ``wire_format = "celery"`` sends to
Celery's event exchange, shaped as a Celery worker's (routing key from the type, the JSON
event as body, the sender in the ``hostname`` header)."""

from __future__ import annotations

import base64
import json

from celeriac.brokers.kombu_redis.wire_events import publishes
from celeriac.messages.celery import CELERY
from celeriac.messages.wire import NATIVE

EVENT = {
    "type": "task-succeeded", "uuid": "a1", "result": "3", "runtime": 0.01,
    "hostname": "w1@host", "timestamp": 1700000000.5, "utcoffset": 0, "pid": 42, "clock": 7,
}  # fmt: skip


def test_an_event_is_routed_by_its_type_with_its_sender_in_a_header() -> None:
    key, parts = CELERY.event_parts(EVENT)
    assert key == "task.succeeded"
    assert json.loads(parts.body) == EVENT
    assert parts.headers == {"hostname": "w1@host"}
    assert parts.properties == {"content_type": "application/json", "content_encoding": "utf-8"}


def test_values_json_lacks_are_sent_as_text_not_refused() -> None:
    _, parts = CELERY.event_parts({**EVENT, "args": (1, 2), "raw": b"\xffx"})
    body = json.loads(parts.body)
    assert body["args"] == [1, 2]
    assert body["raw"] == "\ufffdx"


def test_only_a_format_with_events_of_its_own_names_an_exchange() -> None:
    assert CELERY.events_exchange == "celeryev"
    assert NATIVE.events_exchange is None


def test_on_redis_each_event_is_a_kombu_envelope_on_the_fanout_channel() -> None:
    ((channel, message),) = publishes(CELERY, [EVENT], "app1:", 3)
    assert channel == "app1:/3.celeryev/task.succeeded"
    envelope = json.loads(message)
    assert json.loads(base64.b64decode(envelope["body"])) == EVENT
    assert envelope["content-type"] == "application/json"
    assert envelope["headers"] == {"hostname": "w1@host"}
    info = envelope["properties"]["delivery_info"]
    assert info == {"exchange": "celeryev", "routing_key": "task.succeeded"}
    assert envelope["properties"]["delivery_mode"] == 1  # transient, as Celery's events
