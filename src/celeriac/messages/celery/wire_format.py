"""``CeleryWireFormat``: the ``wire_format = "celery"`` setting's format.

Messages are Celery's task protocol 2 (``to_celery``/``from_celery``). A broker with
headers (RabbitMQ) carries them as Celery does: ``split`` gives the AMQP body
(``[args, kwargs, embed]``), the headers (``task``, ``id``, ``eta``...) and the properties
(``correlation_id``, ``reply_to``, content type and encoding), and ``join`` reads them
back from a message a Celery producer published. The payload that crosses the ``Broker``
seam keeps those parts in one frame, like celeriac's envelope:

``b"CEL2" | uint32 big-endian length of meta | meta JSON | body bytes``,
``meta = {"h": headers, "p": properties, "ct": content type, "ce": content encoding}``.

Pure logic: imports ``celeriac.messages`` and leaves only.
"""

from __future__ import annotations

import datetime as dt
import json
import struct
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import DecodeError
from celeriac.messages.celery import events
from celeriac.messages.celery.task_protocol import from_celery, to_celery
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.envelope import Message, _check_unicode
from celeriac.messages.serializers import is_decimal
from celeriac.messages.wire import WireFormat, WireParts

MAGIC = b"CEL2"
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
#: The AMQP properties a Celery message keeps from one copy to the next. ``delivery_mode``
#: and ``priority`` are the engine's to set on every copy; ``expiration`` is left behind,
#: as RabbitMQ itself drops it when it dead-letters (a copy waiting in a delay queue must
#: not expire early): the ``expires`` header still ends the task.
CARRIED = ("correlation_id", "reply_to", "priority")


def _plain(value: Any) -> Any:
    """A header value another client sent that JSON has no form for, as JSON can hold it
    (AMQP tables may hold bytes, timestamps and decimals)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if is_decimal(value):
        return int(value) if value == value.to_integral_value() else float(value)
    return str(value)


_dump_meta = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_plain).encode


def pack(wire: CeleryWire) -> bytes:
    """One frame holding ``wire``'s body, headers, properties, content type and encoding."""
    meta = _dump_meta(
        {
            "h": wire.headers,
            "p": wire.properties,
            "ct": wire.content_type,
            "ce": wire.content_encoding,
        }
    ).encode("utf-8")
    return b"".join((MAGIC, _LENGTH.pack(len(meta)), meta, bytes(wire.body)))


def unpack(payload: bytes) -> CeleryWire:
    """The ``CeleryWire`` in a frame ``pack`` wrote; ``DecodeError`` naming what is wrong."""
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise DecodeError(f"message payload must be bytes, not {type(payload).__name__}")
    data = bytes(payload)
    if data[: len(MAGIC)] != MAGIC:
        raise DecodeError(
            f"not a Celery message as celeriac frames it: the payload does not start with "
            f"{MAGIC!r} (was it written with another wire_format?)"
        )
    if len(data) < _PREFIX:
        raise DecodeError("truncated message: the header length is missing")
    (length,) = _LENGTH.unpack_from(data, len(MAGIC))
    if _PREFIX + length > len(data):
        raise DecodeError(
            f"truncated message: header says {length} bytes of metadata, "
            f"only {len(data) - _PREFIX} present"
        )
    raw = data[_PREFIX : _PREFIX + length]
    try:
        meta = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise DecodeError(f"message metadata is not valid JSON: {exc}") from None
    except RecursionError:
        raise DecodeError("message metadata is nested too deeply to read") from None
    if b"\\u" in raw:  # only an escape can make text that is not valid Unicode
        _check_unicode(meta)
    if not isinstance(meta, dict):
        raise DecodeError("message metadata is not an object")
    # Each part's type is checked by from_celery, which names the one that is wrong.
    headers: Any = meta.get("h")
    content_type: Any = meta.get("ct")
    content_encoding: Any = meta.get("ce")
    return CeleryWire(
        body=data[_PREFIX + length :],
        headers=headers,
        properties=meta.get("p", {}),
        content_type=content_type,
        content_encoding=content_encoding,
    )


class CeleryWireFormat(WireFormat):
    """Celery's task message protocol 2, in AMQP's parts where the broker has them."""

    name = "celery"
    events_exchange = events.EXCHANGE

    def event_parts(self, event: Mapping[str, Any]) -> tuple[str, WireParts]:
        return events.event_parts(event)

    control_exchange = events.CONTROL_EXCHANGE

    def control_command_parts(self, method: str, arguments: Mapping[str, Any]) -> WireParts:
        return events.command_parts(method, arguments)

    def control_reply_parts(self, ticket: str, hostname: str, reply: Any) -> WireParts:
        return events.control_reply_parts(ticket, hostname, reply)

    def encode(self, message: Message) -> bytes:
        return pack(to_celery(message))

    def decode(self, payload: bytes) -> Message:
        return from_celery(unpack(payload))

    def split(self, payload: bytes) -> WireParts:
        try:
            wire = unpack(payload)
        except DecodeError:
            return WireParts(payload)  # not framed here: carried as it is, decode reports it
        properties = {
            name: value for name, value in (wire.properties or {}).items() if value is not None
        }
        if wire.content_type:
            properties["content_type"] = wire.content_type
        if wire.content_encoding:
            properties["content_encoding"] = wire.content_encoding
        return WireParts(wire.body, dict(wire.headers or {}), properties)

    def join(self, parts: WireParts) -> bytes:
        given = parts.properties
        wire = CeleryWire(
            body=parts.body,
            headers=dict(parts.headers),
            properties={name: given[name] for name in CARRIED if given.get(name) is not None},
            content_type=_text(given.get("content_type")),
            content_encoding=_text(given.get("content_encoding")),
        )
        return pack(wire)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


CELERY = CeleryWireFormat()
