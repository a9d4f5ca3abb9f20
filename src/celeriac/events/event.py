"""What an event is: a dict with a ``type`` and Celery's fields, its Lamport clock, and how
events travel as bytes on the broker's channel (a JSON list of events per payload).

Pure logic: imports ``brokers.base`` (for ``Topic``) and the stdlib only.
"""

from __future__ import annotations

import itertools
import json
import platform
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, cast

from celeriac.brokers.base import Topic

#: Celery's ``celery.worker.state.SOFTWARE_INFO``, in every worker event.
SOFTWARE_INFO = {"sw_ident": "py-celeriac", "sw_ver": "", "sw_sys": platform.system()}
#: Payloads the Redis stream keeps (about; a payload holds 1 to 1,000 events); KiB of the
#: RabbitMQ stream (about 8,000 events).
STREAM_KEEP = 2_000
TASK_EVENTS = (
    "task-sent", "task-received", "task-started", "task-succeeded", "task-failed",
    "task-retried", "task-revoked", "task-rejected",
)  # fmt: skip
WORKER_EVENTS = ("worker-online", "worker-heartbeat", "worker-offline")


def _version() -> str:
    from importlib import metadata  # (only when read: the package may run from a checkout)

    try:
        return metadata.version("celeriac")
    except metadata.PackageNotFoundError:
        return "0"


SOFTWARE_INFO["sw_ver"] = _version()


def Event(type: str, _fields: Mapping[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """An event: a dict with ``type`` and a ``timestamp`` (now unless given), as Celery's."""
    event = dict(_fields, **fields) if _fields else fields
    event["type"] = type
    if "timestamp" not in event:
        event["timestamp"] = time.time()
    return event


def group_from(type_: str) -> str:
    """The group of an event type: ``task`` for ``task-sent``, ``custom`` for ``custom-x``."""
    return type_.split("-", 1)[0]


def utcoffset() -> int:
    """Hours west of UTC, as Celery's ``utcoffset`` field (negative east of it)."""
    local = time.localtime()
    offset = local.tm_gmtoff if local.tm_gmtoff is not None else -time.timezone
    return -offset // 3600


class LamportClock:
    """A logical clock: ``forward`` for an event sent, ``adjust`` for one received, so events
    from several processes can be ordered (Celery's ``clock`` field)."""

    def __init__(self, initial: int = 0) -> None:
        self._counter = itertools.count(initial + 1)
        self._last = initial
        self._lock = threading.Lock()

    @property
    def value(self) -> int:
        return self._last

    def forward(self) -> int:
        # next() on a count is atomic: no lock on the path every event takes.
        self._last = value = next(self._counter)
        return value

    def adjust(self, other: int) -> int:
        with self._lock:
            value = max(self._last, int(other)) + 1
            self._counter = itertools.count(value + 1)
            self._last = value
            return value


def topic(name: str) -> Topic:
    """Where events travel: a stream topic, so a monitor started late reads what it missed."""
    return Topic(name, kind="stream", keep=STREAM_KEEP)


SERIALIZERS = ("json", "msgpack")


def check_serializer(name: str) -> str:
    """``event_serializer``: ``json`` (Celery's default) or ``msgpack`` (faster to write,
    for busy workers; needs the msgpack package, ``celeriac[msgpack]``)."""
    if name == "auth":  # Celery's signing serializer: celeriac signs task messages only
        raise ValueError(
            "event_serializer='auth': events are not signed (they run no code; task "
            "messages are, see app.setup_security()); use 'json' or 'msgpack'"
        )
    if name not in SERIALIZERS:
        raise ValueError(f"event_serializer is 'json' or 'msgpack', not {name!r}")
    if name == "msgpack":
        _msgpack()
    return name


def _msgpack() -> Any:
    try:
        import msgpack  # (optional: only for event_serializer='msgpack')
    except ImportError:
        raise ValueError(
            "events in msgpack need the msgpack package: pip install 'celeriac[msgpack]'"
        ) from None
    return msgpack


def encode(events: Iterable[Mapping[str, Any]], serializer: str = "json") -> bytes:
    """One payload for several events (a list; a value the format cannot carry is sent
    as its repr)."""
    if serializer == "msgpack":
        return bytes(_msgpack().packb(list(events), default=repr))
    return json.dumps(list(events), default=repr, separators=(",", ":")).encode()


def encode_batch(
    common: Mapping[str, Any], events: list[dict[str, Any]], serializer: str = "json"
) -> bytes:
    """One payload for events of one sender: the fields they share (``hostname``,
    ``utcoffset``, ``pid``) once, beside the list (``decode`` puts them back)."""
    return encode_one({"common": common, "events": events}, serializer)


def encode_one(data: Any, serializer: str) -> bytes:
    if serializer == "msgpack":
        return bytes(_msgpack().packb(data, default=repr))
    return json.dumps(data, default=repr, separators=(",", ":")).encode()


def decode(payload: bytes) -> list[dict[str, Any]]:
    """The events of one payload (a list, or one event; JSON or msgpack, told apart by
    the first byte); ValueError when it is not events."""
    if payload[:1] in (b"[", b"{"):
        data = json.loads(payload)
    else:
        unpack = _msgpack().unpackb
        try:
            data = unpack(payload)
        except Exception as exc:  # msgpack's own errors for bytes that are not msgpack
            raise ValueError(f"not an event payload: {exc}") from None
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        common = data.get("common") or {}
        items: list[Any] = data["events"]
        for item in items:
            if isinstance(item, dict):
                item.update(common)
    else:
        items = data if isinstance(data, list) else [data]
    if not all(isinstance(item, dict) and isinstance(item.get("type"), str) for item in items):
        raise ValueError(
            "an event payload is an event (a map with a 'type'), a list of them, or a batch"
        )
    return cast("list[dict[str, Any]]", items)


def check_fields(type_: str, fields: Mapping[str, Any]) -> None:
    """A custom event's fields must travel as JSON: say which one cannot."""
    if not isinstance(type_, str) or not type_:
        raise TypeError(f"an event type is a non-empty string, not {type_!r}")
    for key, value in fields.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            raise TypeError(
                f"event {type_!r}: field {key!r} ({type(value).__name__}) cannot be sent as "
                f"JSON; send a string, number, list or dict (e.g. repr() it)"
            ) from None


__all__ = [
    "SOFTWARE_INFO",
    "TASK_EVENTS",
    "WORKER_EVENTS",
    "Event",
    "LamportClock",
    "check_fields",
    "check_serializer",
    "decode",
    "encode",
    "group_from",
    "topic",
    "utcoffset",
]
