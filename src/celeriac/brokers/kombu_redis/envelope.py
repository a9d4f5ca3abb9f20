"""Kombu's message envelope, as far as the engine needs it.

Kombu stores each message as a JSON object: ``body`` (base64 text), ``content-type``,
``content-encoding``, ``headers`` and ``properties``; the transport fills in
``properties.delivery_tag`` (a fresh UUID), ``properties.delivery_info`` (exchange and
routing key) and ``properties.priority`` (0-9, 0 served first). The engine carries
payloads as they are, with two rules:

- A payload that is a kombu envelope (a Celery message from the wire format) is stored as
  that envelope, with the transport's properties set.
- Any other payload is stored as kombu stores raw bytes (``application/data``,
  ``binary``): a kombu consumer reads those bytes back as its message body, and so does
  this engine. The same holds the other way for raw bytes a kombu producer sent.

Engine helper: imports ``keys`` and the standard library.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.kombu_redis.keys import celeriac_priority, kombu_priority

RAW_TYPE, RAW_ENCODING = "application/data", "binary"


def new_tag() -> str:
    """A delivery tag as kombu makes them."""
    return str(uuid.uuid4())


def raw_envelope(payload: bytes, message_id: str = "") -> dict[str, Any]:
    """A minimal kombu envelope around ``payload``: what kombu stores for a raw-bytes
    message (its transport properties still to be set, see ``route``)."""
    properties: dict[str, Any] = {"body_encoding": "base64", "delivery_info": {}}
    if message_id:
        properties["correlation_id"] = message_id
    return {
        "body": base64.b64encode(payload).decode("ascii"),
        "content-encoding": RAW_ENCODING,
        "content-type": RAW_TYPE,
        "headers": {},
        "properties": properties,
    }


def as_envelope(payload: bytes) -> dict[str, Any] | None:
    """``payload`` as a kombu envelope, or None when it is not one."""
    if payload[:1] != b"{":
        return None
    try:
        found = json.loads(payload)
    except (UnicodeDecodeError, ValueError):
        return None
    if (
        isinstance(found, dict)
        and "body" in found
        and isinstance(found.get("properties"), dict)
        and isinstance(found.get("headers", {}), dict)
    ):
        return found
    return None


def route(
    envelope: dict[str, Any], queue: str, priority: int, persistent: bool = True
) -> dict[str, Any]:
    """Set the transport's properties on ``envelope`` (in place) for a publish to
    ``queue``: a fresh delivery tag, the default exchange with the queue as routing key (so
    any kombu consumer's restore brings it back to this queue), and kombu's priority."""
    properties = envelope.setdefault("properties", {})
    properties["delivery_tag"] = new_tag()
    properties["delivery_info"] = {"exchange": "", "routing_key": queue}
    properties["priority"] = kombu_priority(priority)
    properties.setdefault("delivery_mode", 2 if persistent else 1)
    properties.setdefault("body_encoding", "base64")
    envelope.setdefault("headers", {})
    return envelope


def encode(envelope: dict[str, Any]) -> bytes:
    """JSON as kombu writes it."""
    return json.dumps(envelope).encode("utf-8")


def prepare(payload: bytes, message_id: str, queue: str, priority: int, persistent: bool) -> bytes:
    """What the engine pushes on a kombu list for an outbound payload."""
    envelope = as_envelope(payload)
    if envelope is None:
        envelope = raw_envelope(payload, message_id)
    return encode(route(envelope, queue, priority, persistent))


def mark_redelivered(envelope: dict[str, Any]) -> None:
    """Flag a restored envelope the way kombu does when it restores one."""
    headers, properties = envelope.get("headers"), envelope.get("properties")
    if isinstance(headers, dict) and isinstance(properties, dict):
        info = properties.get("delivery_info")
        if isinstance(info, dict):
            headers["redelivered"] = True
            info["redelivered"] = True


@dataclass(frozen=True, slots=True)
class Stored:
    """What the engine reads back from a stored envelope."""

    payload: bytes  # the raw bytes of a raw-bytes message, else the envelope itself
    message_id: str
    priority: int | None  # celeriac's priority (9 first); None when it has none
    tag: str


def read(item: bytes) -> Stored:
    """The payload, message id, priority and delivery tag of a stored envelope; never
    fails (anything can be pushed on a list): what cannot be read is left out."""
    envelope = as_envelope(item)
    if envelope is None:
        return Stored(item, "", None, "")
    properties: dict[str, Any] = envelope["properties"]
    headers: dict[str, Any] = envelope.get("headers") or {}
    tag = _text(properties.get("delivery_tag"))
    message_id = _text(headers.get("id")) or _text(properties.get("correlation_id")) or tag
    return Stored(
        _raw_body(envelope, properties) if _is_raw(envelope) else item,
        message_id,
        celeriac_priority(properties.get("priority")),
        tag,
    )


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


def _is_raw(envelope: dict[str, Any]) -> bool:
    return envelope.get("content-type") == RAW_TYPE and (
        envelope.get("content-encoding") == RAW_ENCODING
    )


def _raw_body(envelope: dict[str, Any], properties: dict[str, Any]) -> bytes:
    body = envelope.get("body")
    if not isinstance(body, str):
        return b""
    if properties.get("body_encoding") == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return body.encode("utf-8")
    return body.encode("utf-8")
