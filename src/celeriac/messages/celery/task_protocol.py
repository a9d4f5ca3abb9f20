"""celeriac's ``Message`` and Celery's task message protocol 2, both ways.

celeriac already names its headers as protocol 2 does and writes the same body
``[args, kwargs, embed]``; what differs is what each side leaves out. Celery writes every
header of the protocol, its default included (``retries: 0``, ``timelimit: [null, null]``,
``root_id`` the task's own id, ``lang: "py"``...), and every message has a
``correlation_id``, a ``reply_to`` and a ``priority``. celeriac writes only what differs
from the default. ``to_celery`` fills the defaults in, in Celery's order; ``from_celery``
leaves them out again, so a message that crosses and comes back is the one that left.

The body is rewritten only where the two sides read it differently (``body``); a protocol
1 message (Celery before 4.0, or ``task_protocol = 1``) is read into a protocol 2 one.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import DecodeError, EncodeError
from celeriac.messages import compression as compressions
from celeriac.messages.celery.body import (
    BUILTINS,
    JSON,
    MSGPACK,
    TO_CELERY,
    celeriac_marker,
    convert_body,
    convert_markers,
    rename,
    rename_embed,
)
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.envelope import Message
from celeriac.messages.serializers import registry
from celeriac.messages.validation import parse_iso

#: Protocol 2's headers, in the order Celery writes them, with the value Celery writes for
#: "not given" (``None`` for those it leaves null). ``root_id``'s default is the task's id.
HEADERS: dict[str, Any] = {
    "lang": "py",
    "task": None,
    "id": None,
    "shadow": None,
    "eta": None,
    "expires": None,
    "group": None,
    "group_index": None,
    "retries": 0,
    "timelimit": [None, None],
    "root_id": None,
    "parent_id": None,
    "argsrepr": "()",
    "kwargsrepr": "{}",
    "origin": None,
    "ignore_result": False,
    "replaced_task_nesting": 0,
    "stamped_headers": None,
    "stamps": {},
}
#: Headers read as the protocol's (a null one is left out); any other is the caller's own.
PROTOCOL_HEADERS = frozenset(HEADERS) | {"compression"}

PERSISTENT = 2  # AMQP delivery mode: 2 persistent, 1 transient


def _is_default(value: Any, default: Any) -> bool:
    """``value`` is ``default`` as JSON writes it (``0`` is not ``false``, nor the reverse)."""
    if isinstance(default, list):
        return isinstance(value, (list, tuple)) and list(value) == default
    return type(value) is type(default) and value == default


def _given(headers: Mapping[str, Any], name: str) -> Any:
    """The header's value, else the protocol's default (a fresh copy of a list or dict)."""
    value = headers.get(name)
    if value is None:
        value = HEADERS[name]
    if isinstance(value, (list, tuple)):
        return list(value)
    return dict(value) if isinstance(value, dict) else value


# -- celeriac -> Celery ---------------------------------------------------------------------------
def to_celery(
    message: Message,
    *,
    exchange: str = "",
    routing_key: str = "",
    delivery_mode: int = PERSISTENT,
    origin: str | None = None,
    now: float | None = None,
) -> CeleryWire:
    """The Celery protocol 2 message for ``message``, published to ``exchange`` with
    ``routing_key`` (for a queue by name: ``""`` and the queue's name).

    ``origin`` is written when the message names none (Celery writes its producer's node
    name). With ``now`` (a Unix time), an ``expires`` message also gets the AMQP
    ``expiration`` property Celery sets (milliseconds left until it expires), so RabbitMQ
    drops it once expired; without ``now`` it is not written, and an expired message
    reaches a worker, which marks it revoked."""
    headers_in = message.headers
    try:
        task_id, task_name = message.id, message.task_name
    except KeyError as exc:
        raise EncodeError(f"the message has no {exc.args[0]!r} header to send") from None
    headers: dict[str, Any] = {}
    for name in HEADERS:
        headers[name] = _given(headers_in, name)
    headers["task"] = rename(task_name, TO_CELERY)
    headers["id"] = task_id
    headers["root_id"] = headers_in.get("root_id") or task_id
    headers["origin"] = headers_in.get("origin") or origin
    for name, value in headers_in.items():
        headers.setdefault(name, value)  # compression, the caller's own, celeriac's own

    given = message.properties
    properties: dict[str, Any] = {
        "correlation_id": given.get("correlation_id") or task_id,
        "reply_to": given.get("reply_to") or "",
        "delivery_mode": delivery_mode,
    }
    if now is not None and isinstance(headers_in.get("expires"), str):
        left = _seconds_until(headers_in["expires"], now)
        if left is not None:
            properties["expiration"] = str(int(max(left, 0.0) * 1000))
    priority = given.get("priority")
    properties["priority"] = 0 if priority is None else priority
    for name, value in given.items():
        properties.setdefault(name, value)

    body = convert_body(
        message.body, message.content_type, headers_in.get("compression"), to_celery=True
    )
    return CeleryWire(
        body=body,
        headers=headers,
        properties=properties,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_info={"exchange": exchange, "routing_key": routing_key},
    )


def _seconds_until(text: str, now: float) -> float | None:
    try:
        when = parse_iso(text)
    except ValueError:
        return None  # the reader refuses it, naming the header
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # as a celeriac worker reads it
    return when.timestamp() - now


# -- Celery -> celeriac ---------------------------------------------------------------------------
def from_celery(wire: CeleryWire, *, max_size: int | None = None) -> Message:
    """The celeriac ``Message`` a Celery task message carries (protocol 2, or protocol 1
    read as 2). ``DecodeError`` naming the problem when it is not a task message at all;
    the values of its fields are checked by the worker as any message's
    (``messages.validation``), so that a bad one is recorded against its task.
    ``max_size`` bounds a compressed body once decompressed (``MessageTooLarge``)."""
    _check_parts(wire)
    headers_in, body = wire.headers, bytes(wire.body)
    content_type = wire.content_type
    protocol_1 = "task" not in headers_in and "id" not in headers_in
    if protocol_1:  # its body is rewritten as it is read: celeriac's dialect and names
        headers_in, body = _protocol_1(wire, max_size)
    for required in ("task", "id"):
        value = headers_in.get(required)
        if not isinstance(value, str) or not value:
            raise DecodeError(
                f"the Celery message's headers lack a string {required!r}"
                + (f" (found {type(value).__name__})" if value is not None else "")
            )
    task_id = headers_in["id"]
    headers: dict[str, Any] = {}
    for name, value in headers_in.items():
        if name in PROTOCOL_HEADERS:
            default = HEADERS.get(name)
            if value is None or (default is not None and _is_default(value, default)):
                continue
            if name == "root_id" and value == task_id:
                continue
        headers[name] = value
    headers["task"] = rename(headers["task"], BUILTINS)

    given = wire.properties
    properties: dict[str, Any] = {}
    priority = given.get("priority")
    if priority is not None and not _is_default(priority, 0):  # kombu writes 0 for none
        properties["priority"] = priority
    if given.get("reply_to") not in (None, ""):
        properties["reply_to"] = given["reply_to"]
    if given.get("correlation_id") not in (None, task_id):
        properties["correlation_id"] = given["correlation_id"]

    if not protocol_1:
        body = convert_body(
            body, content_type, headers.get("compression"), to_celery=False, max_size=max_size
        )
    return Message(
        headers=headers,
        body=body,
        content_type=content_type,
        content_encoding=wire.content_encoding or "utf-8",
        properties=properties,
    )


def _check_parts(wire: CeleryWire) -> None:
    if not isinstance(wire.body, (bytes, bytearray, memoryview)):
        raise DecodeError(f"the Celery message's body must be bytes, not {_kind(wire.body)}")
    for name, value in (("headers", wire.headers), ("properties", wire.properties)):
        if not isinstance(value, dict):
            raise DecodeError(f"the Celery message's {name} must be an object, not {_kind(value)}")
    if not isinstance(wire.content_type, str) or not wire.content_type:
        raise DecodeError(
            f"the Celery message has no content type (found {wire.content_type!r}): Celery "
            f"always sends one, so this message was not written by Celery's producer"
        )
    if wire.content_encoding is not None and not isinstance(wire.content_encoding, str):
        raise DecodeError(
            f"the Celery message's content encoding must be a string, not "
            f"{_kind(wire.content_encoding)}"
        )


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# -- protocol 1 -----------------------------------------------------------------------------------
#: Protocol 1's body fields that become protocol 2 headers (``taskset`` is ``group``'s
#: older name).
_PROTOCOL_1_HEADERS = (
    "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin",
)  # fmt: skip


def _protocol_1(wire: CeleryWire, max_size: int | None) -> tuple[dict[str, Any], bytes]:
    """Headers and a ``[args, kwargs, embed]`` body from a protocol 1 message, whose body
    is one object holding the task's name, id, arguments and options."""
    advice = (
        "have the producer send task protocol 2 (task_protocol = 2, Celery's default since 4.0)"
    )
    content_type, data = wire.content_type, bytes(wire.body)
    compression = wire.headers.get("compression")
    if isinstance(compression, str):
        data = compressions.decompress(data, compression, max_size)
    if content_type not in (JSON, MSGPACK):
        raise DecodeError(
            f"the Celery message has no 'task' header, so it would be task protocol 1, whose "
            f"body ({content_type}) celeriac reads only as JSON or msgpack: {advice}"
        )
    try:
        if content_type == JSON:
            old = convert_markers(json.loads(data.decode("utf-8")), celeriac_marker)
        else:
            old = registry["msgpack"].loads(data)
    except RecursionError:
        raise DecodeError("the protocol 1 message body is nested too deeply to read") from None
    except Exception as exc:  # bad JSON or msgpack (its own error types), msgpack missing
        raise DecodeError(f"the protocol 1 message body cannot be read ({exc}): {advice}") from None
    if not isinstance(old, dict) or "task" not in old:
        raise DecodeError(
            "not a Celery task message: the headers have no 'task' and 'id' (task protocol "
            "2), and the body is not a protocol 1 task (an object with 'task' and 'id')"
        )
    if old.get("utc") is False and any(_naive(old.get(name)) for name in ("eta", "expires")):
        raise DecodeError(
            "the protocol 1 message gives its eta or expires in the sender's local time "
            "(utc: false), which celeriac cannot know: set enable_utc = True on the "
            f"producer, or {advice}"
        )
    headers = {name: old[name] for name in _PROTOCOL_1_HEADERS if old.get(name) is not None}
    if old.get("group") is None and old.get("taskset") is not None:
        headers["group"] = old["taskset"]
    for name, value in wire.headers.items():  # the caller's own headers
        if name != "compression":  # the new body is written uncompressed
            headers.setdefault(name, value)
    embed = {name: old[name] for name in ("callbacks", "errbacks", "chord") if old.get(name)}
    body = [old.get("args", []), old.get("kwargs", {}), embed]
    rename_embed(body, BUILTINS)
    try:
        if content_type == JSON:
            encoded = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        else:
            encoded = registry["msgpack"].dumps(body)
    except (ValueError, TypeError, UnicodeEncodeError) as exc:
        raise DecodeError(f"the protocol 1 message body cannot be rewritten: {exc}") from None
    return headers, encoded


def _naive(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return parse_iso(value).tzinfo is None
    except ValueError:
        return False
