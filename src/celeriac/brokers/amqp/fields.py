"""Reading what an AMQP message carries besides its body: the headers and properties that
any publisher may set, so each reader here returns a usable value for anything it is
given (a number for a number, text for text) and never raises; and how a received copy
becomes the payload the wire format reads (``payload_of``).
Engine helper: imports ``brokers.amqp.topology`` and ``messages.wire`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celeriac.brokers.amqp import topology as t
from celeriac.messages.wire import WireFormat, WireParts

#: The basic properties a wire format may read from a received copy (``message_id`` is
#: unique per copy, the engine's own).
READ_PROPERTIES = (
    "content_type", "content_encoding", "correlation_id", "reply_to", "priority",
    "delivery_mode", "expiration", "timestamp", "message_type", "user_id", "app_id",
)  # fmt: skip
#: Headers RabbitMQ adds when it dead-letters or counts a copy.
_RABBITMQ_HEADERS = frozenset({"x-death", "x-delivery-count"})


def number(value: Any) -> int | None:
    """An integer header (an int, a float, a decimal, digits as text); None otherwise,
    infinity and NaN included."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError, ArithmeticError):
        return None


def text(value: Any) -> str:
    """A header as text: bytes decoded (what is not UTF-8 shown as U+FFFD), else ``str``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


@dataclass(frozen=True, slots=True)
class Incoming:
    """What a received copy says about itself."""

    message_id: str
    before: int  # hand-outs before this copy was published (ours: x-celeriac-deliveries)
    priority: int  # clamped to 0-9
    lost: int  # hand-outs RabbitMQ counts as lost with a connection or channel


def incoming(properties: Any, redelivered: Any) -> Incoming:
    """Read a copy's id, counts and priority from its properties, whoever published it."""
    headers = properties.headers if isinstance(properties.headers, dict) else {}
    message_id = text(
        headers.get(t.H_ID) or properties.correlation_id or properties.message_id or ""
    )
    before = max(0, number(headers.get(t.H_DELIVERIES)) or 0)
    priority = min(max(number(properties.priority) or 0, 0), t.MAX_PRIORITY)
    returned = headers.get("x-delivery-count")  # quorum queues count returns themselves
    lost = max(0, number(returned) or 0) if returned is not None else int(bool(redelivered))
    return Incoming(message_id, before, priority, lost)


def _engines(name: str) -> bool:
    """A header the engine or RabbitMQ put on a copy, not the message's own."""
    return (
        name.startswith(t.HEADER_PREFIX)
        or name in _RABBITMQ_HEADERS
        or name.startswith(("x-first-death-", "x-last-death-"))
    )


def payload_of(properties: Any, body: Any, wire_format: WireFormat) -> bytes:
    """The payload a received copy carries, as ``wire_format`` joins it from the copy's
    body, its headers (without those the engine and RabbitMQ add) and its properties."""
    if wire_format.joins_body_only:
        return bytes(body)
    headers = properties.headers if isinstance(properties.headers, dict) else {}
    found = {name: getattr(properties, name, None) for name in READ_PROPERTIES}
    parts = WireParts(
        bytes(body),
        {name: value for name, value in headers.items() if not _engines(name)},
        {name: value for name, value in found.items() if value is not None},
    )
    return wire_format.join(parts)
