"""Kombu's message envelope, as far as the engine needs it.

Kombu stores each message as a JSON object: ``body`` (base64 text), ``content-type``,
``content-encoding``, ``headers`` and ``properties``; the transport fills in
``properties.delivery_tag`` (a fresh UUID), ``properties.delivery_info`` (exchange and
routing key) and ``properties.priority`` (0-9, 0 served first). The broker's wire
format says what goes where (``WireFormat.split`` and ``join``):

- A payload it splits into headers or properties beside a body (Celery's task protocol)
  is stored as kombu's Redis transport stores that message: the body in base64, the
  content type and encoding, the headers and the properties (``correlation_id``,
  ``reply_to``...) where kombu puts them, with the transport's own set. On fetch, the
  envelope's parts are joined back into the payload, whoever published it.
- A payload it keeps whole (celeriac's own envelope) is stored as kombu stores raw bytes
  (``application/data``, ``binary``, no headers): a kombu consumer reads those bytes back
  as its message body, and so does this engine. The same holds the other way for raw
  bytes a kombu producer sent.

Engine helper: imports ``keys``, ``messages`` and the standard library.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from typing import Any

from celeriac.brokers.kombu_redis.keys import celeriac_priority, kombu_priority
from celeriac.exceptions import DecodeError
from celeriac.messages.celery.kombu_redis import from_kombu_redis, to_kombu_redis
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.wire import NATIVE, WireFormat, WireParts

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


def prepare(
    payload: bytes,
    message_id: str,
    queue: str,
    priority: int,
    persistent: bool,
    wire_format: WireFormat = NATIVE,
) -> bytes:
    """What the engine pushes on a kombu list for an outbound payload: the envelope of the
    parts ``wire_format`` splits it into, else (a payload kept whole) of raw bytes."""
    parts = wire_format.split(payload)
    if not parts.headers and not parts.properties:
        return encode(route(raw_envelope(parts.body, message_id), queue, priority, persistent))
    return from_parts(parts, queue, priority, persistent)


def from_parts(parts: WireParts, queue: str, priority: int, persistent: bool) -> bytes:
    """The envelope kombu's Redis transport writes for a message of ``parts`` published to
    ``queue`` by name (the default exchange): the parts' properties in the order given,
    the engine's delivery mode and priority, then the transport's properties."""
    given = dict(parts.properties)
    content_type = given.pop("content_type", None)
    content_encoding = given.pop("content_encoding", None)
    properties = {name: value for name, value in given.items() if value is not None}
    properties["delivery_mode"] = 2 if persistent else 1
    properties["priority"] = kombu_priority(priority)
    wire = CeleryWire(
        body=parts.body,
        headers=dict(parts.headers),
        properties=properties,
        content_type=content_type if isinstance(content_type, str) else RAW_TYPE,
        content_encoding=content_encoding if isinstance(content_encoding, str) else RAW_ENCODING,
        delivery_info={"exchange": "", "routing_key": queue},
    )
    return to_kombu_redis(wire, delivery_tag=new_tag())


def payload_of(item: bytes, priority: int | None, wire_format: WireFormat) -> bytes | None:
    """The payload ``wire_format`` joins from a stored envelope's body, headers and
    properties (the content type and encoding among them, ``priority`` celeriac's); None
    when ``item`` is not an envelope kombu could read."""
    try:
        wire = from_kombu_redis(item)
    except DecodeError:
        return None
    properties = {name: value for name, value in wire.properties.items() if value is not None}
    properties.pop("priority", None)
    if priority is not None:
        properties["priority"] = priority
    if wire.content_type:
        properties["content_type"] = wire.content_type
    if wire.content_encoding:
        properties["content_encoding"] = wire.content_encoding
    return wire_format.join(WireParts(wire.body, dict(wire.headers), properties))


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

    payload: bytes  # the raw bytes of a raw-bytes message, else as the wire format joins it
    message_id: str
    priority: int | None  # celeriac's priority (9 first); None when it has none
    tag: str


def read(item: bytes, wire_format: WireFormat = NATIVE) -> Stored:
    """The payload, message id, priority and delivery tag of a stored envelope; never
    fails (anything can be pushed on a list): what cannot be read is left out, and an
    envelope whose parts cannot be read is handed out whole, for ``decode`` to report."""
    envelope = as_envelope(item)
    if envelope is None:
        return Stored(item, "", None, "")
    properties: dict[str, Any] = envelope["properties"]
    headers: dict[str, Any] = envelope.get("headers") or {}
    tag = _text(properties.get("delivery_tag"))
    message_id = _text(headers.get("id")) or _text(properties.get("correlation_id")) or tag
    priority = celeriac_priority(properties.get("priority"))
    if _is_raw(envelope) and not headers:
        payload: bytes | None = _raw_body(envelope, properties)
    else:
        payload = payload_of(item, priority, wire_format)
    return Stored(item if payload is None else payload, message_id, priority, tag)


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
