"""kombu's Redis envelope: the JSON document its Redis transport pushes onto a list.

``{"body": <base64 text>, "content-encoding": ..., "content-type": ..., "headers": {...},
"properties": {..., "delivery_info": {"exchange": ..., "routing_key": ...}, "priority":
..., "body_encoding": "base64", "delivery_tag": <uuid>}}``, written with Python's
``json.dumps`` defaults as kombu writes it. The list it goes on, and the priority lists
next to it, are the broker's business.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Any

from celeriac.exceptions import DecodeError, EncodeError
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.envelope import _check_unicode

#: Properties the envelope holds about the transport, not the message.
_TRANSPORT = ("delivery_info", "body_encoding", "delivery_tag")


def to_kombu_redis(wire: CeleryWire, *, delivery_tag: str | None = None) -> bytes:
    """The bytes kombu's Redis transport stores for ``wire``: its delivery tag is
    ``delivery_tag``, else the wire's own, else a fresh UUID (as kombu gives one)."""
    properties = {
        name: value
        for name, value in wire.properties.items()
        if name != "priority" and name not in _TRANSPORT
    }
    # kombu's order: the publish's properties, then delivery_info and priority, then what
    # the transport adds.
    properties["delivery_info"] = dict(wire.delivery_info)
    priority = wire.properties.get("priority")
    properties["priority"] = 0 if priority is None else priority
    properties["body_encoding"] = "base64"
    properties["delivery_tag"] = delivery_tag or wire.delivery_tag or str(uuid.uuid4())
    envelope = {
        "body": base64.b64encode(bytes(wire.body)).decode("ascii"),
        "content-encoding": wire.content_encoding,
        "content-type": wire.content_type,
        "headers": wire.headers,
        "properties": properties,
    }
    try:
        return json.dumps(envelope).encode("ascii")  # ensure_ascii: every byte is ASCII
    except (TypeError, ValueError) as exc:
        raise EncodeError(
            f"the message cannot be written as kombu's JSON envelope: {exc}"
        ) from None


def from_kombu_redis(payload: bytes) -> CeleryWire:
    """The message in one entry of a kombu Redis queue; ``DecodeError`` naming what is
    wrong when it is not kombu's envelope."""
    if not isinstance(payload, (bytes, bytearray, memoryview, str)):
        raise DecodeError(f"a kombu message must be bytes, not {type(payload).__name__}")
    try:
        raw = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(f"not a kombu message: the payload is not UTF-8 text ({exc})") from None
    try:
        envelope = json.loads(raw)
    except ValueError as exc:
        raise DecodeError(f"not a kombu message: the payload is not valid JSON ({exc})") from None
    except RecursionError:
        raise DecodeError("not a kombu message: its JSON is nested too deeply to read") from None
    if "\\u" in raw:  # only an escape can make text that is not valid Unicode
        _check_unicode(envelope)
    if not isinstance(envelope, dict):
        raise DecodeError(
            f"not a kombu message: the payload is a JSON {_kind(envelope)}, not an object"
        )
    properties = _object(envelope, "properties", required=True)
    headers = _object(envelope, "headers")
    delivery_info = _object(properties, "delivery_info", where="properties")
    content_type = _text(envelope, "content-type")
    content_encoding = _text(envelope, "content-encoding")
    delivery_tag = properties.get("delivery_tag")
    if delivery_tag is not None and not isinstance(delivery_tag, str):
        raise DecodeError(
            f"the kombu message's delivery_tag must be a string, not {_kind(delivery_tag)}"
        )
    return CeleryWire(
        body=_body(envelope.get("body"), properties.get("body_encoding")),
        headers=headers,
        properties={name: value for name, value in properties.items() if name not in _TRANSPORT},
        content_type=content_type or "",
        content_encoding=content_encoding or "utf-8",
        delivery_info=delivery_info,
        delivery_tag=delivery_tag,
    )


def _body(body: Any, encoding: Any) -> bytes:
    if body is None or body == "":
        return b""
    if not isinstance(body, str):
        raise DecodeError(f"the kombu message's body must be a string, not {_kind(body)}")
    if encoding == "base64":
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise DecodeError(f"the kombu message's body is not valid base64: {exc}") from None
    if encoding is None or (isinstance(encoding, str) and encoding.lower() == "utf-8"):
        return body.encode("utf-8")
    raise DecodeError(
        f"the kombu message's body_encoding is {encoding!r}: kombu's transports write "
        f"'base64' (their default) or leave the body as text; set the producer's "
        f"transport option body_encoding back to 'base64'"
    )


def _object(
    container: dict[str, Any], name: str, *, required: bool = False, where: str = ""
) -> dict[str, Any]:
    value = container.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        place = f"{where} {name!r}" if where else repr(name)
        found = "none" if value is None else f"a JSON {_kind(value)}"
        raise DecodeError(f"the kombu message's {place} must be an object, found {found}")
    return value


def _text(container: dict[str, Any], name: str) -> str | None:
    value = container.get(name)
    if value is not None and not isinstance(value, str):
        raise DecodeError(f"the kombu message's {name!r} must be a string, not {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {
        dict: "object", list: "array", str: "string", bool: "boolean", int: "number",
        float: "number", type(None): "null",
    }.get(type(value), type(value).__name__)  # fmt: skip
