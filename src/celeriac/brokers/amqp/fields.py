"""Reading what an AMQP message carries besides its body: the headers and properties that
any publisher may set, so each reader here returns a usable value for anything it is
given (a number for a number, text for text) and never raises.
Engine helper: imports ``brokers.amqp.topology`` only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celeriac.brokers.amqp import topology as t


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
