"""Celery's result records (``wire_format = "celery"``): the keys, the JSON Celery's
backends read, exceptions named across the two sides, saved groups as tuples."""

from __future__ import annotations

import json
import uuid

import pytest

from celeriac import states
from celeriac.exceptions import ContentDisallowed, DecodeError, TimeLimitExceeded
from celeriac.results.celery_records import CELERY_RECORDS
from celeriac.results.memory import MemoryBackend

JSON = frozenset({"application/json"})


def test_keys_are_celerys() -> None:
    records = CELERY_RECORDS
    assert records.task_key("t-1") == "celery-task-meta-t-1"
    assert records.group_key("g-1") == "celery-taskset-meta-g-1"
    assert records.chord_key("g-1").startswith("celeriac-")  # ours: Celery's differ
    # Celery's global_keyprefix: a separator is added unless it ends in one.
    assert records.stored_key("", "k") == "k"
    assert records.stored_key("app", "k") == "app_k"
    assert records.stored_key("app:", "k") == records.channel("app:", "k") == "app:k"


def test_a_task_record_is_celerys_json() -> None:
    backend = MemoryBackend(record_format=CELERY_RECORDS)
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    backend.store_result("t-1", {"id": ident, "raw": b"ab"}, states.SUCCESS)
    raw = backend._get("celery-task-meta-t-1")
    assert raw is not None
    record = json.loads(raw)  # plain JSON: no content-type line in front
    assert record["status"] == "SUCCESS" and record["task_id"] == "t-1"
    assert record["traceback"] is None and record["date_done"].endswith("+00:00")
    # kombu's dialect: a UUID as its hex, bytes as text.
    assert record["result"]["id"] == {"__type__": "uuid", "__value__": {"hex": ident.hex}}
    assert record["result"]["raw"] == {"__type__": "bytes", "__value__": "ab"}
    assert backend.get_task_meta("t-1")["result"] == {"id": ident, "raw": b"ab"}


def test_exceptions_are_named_for_the_other_side() -> None:
    backend = MemoryBackend(record_format=CELERY_RECORDS)
    backend.mark_as_failure("t-2", TimeLimitExceeded(5.0))
    record = json.loads(backend._get("celery-task-meta-t-2") or b"")
    assert record["result"] == {
        "exc_type": "TimeLimitExceeded", "exc_module": "celery.exceptions", "exc_message": [5.0],
    }  # fmt: skip
    # As Celery's worker writes it (billiard's class): read back as celeriac's own.
    written = {
        "status": "FAILURE", "task_id": "t-3", "traceback": "...", "children": [],
        "date_done": "2030-01-01T00:00:00+00:00",
        "result": {"exc_type": "TimeLimitExceeded", "exc_module": "billiard.exceptions",
                   "exc_message": [5.0]},
    }  # fmt: skip
    backend._set("celery-task-meta-t-3", json.dumps(written).encode(), None, ready=True)
    error = backend.get_task_meta("t-3")["result"]
    assert type(error) is TimeLimitExceeded and error.args == (5.0,)
    written["result"] = {"exc_type": "ValueError", "exc_module": "builtins", "exc_message": ["x"]}
    backend._set("celery-task-meta-t-4", json.dumps(written).encode(), None, ready=True)
    assert repr(backend.get_task_meta("t-4")["result"]) == "ValueError('x')"


def test_a_saved_group_is_celerys_tuple() -> None:
    backend = MemoryBackend(record_format=CELERY_RECORDS)
    backend.save_group("g-1", ["a", ["g-2", ["b", "c"]]])
    record = json.loads(backend._get("celery-taskset-meta-g-1") or b"")
    # GroupResult.as_tuple(): ((id, parent), [member tuples]).
    assert record == {
        "result": [["g-1", None], [[["a", None], None], [["g-2", None],
                   [[["b", None], None], [["c", None], None]]]]]
    }  # fmt: skip
    assert backend.restore_group("g-1") == ["a", ["g-2", ["b", "c"]]]


def test_reading_refuses_what_result_accept_content_refuses() -> None:
    backend = MemoryBackend(record_format=CELERY_RECORDS, accept_content=("msgpack",))
    backend._set("celery-task-meta-t-5", b'{"status": "SUCCESS"}', None, ready=True)
    with pytest.raises(ContentDisallowed):
        CELERY_RECORDS.decode(b'{"status": "SUCCESS"}', frozenset({"application/x-msgpack"}))
    with pytest.raises(DecodeError, match="json"):
        CELERY_RECORDS.decode(b"{not json", JSON)
