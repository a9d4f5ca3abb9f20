"""One received message, re-encoded for the target: the same task id, arguments and
headers (eta, expires, retries, links, root and parent ids...), the priority the source
handed it out with, and a broker-side delay until its eta when that is still to come.

Pure logic on the seam's types: imports ``brokers.base`` and ``messages``. The source's
wire format decodes (Celery's task protocol, through the existing codec); the target's
encodes (celeriac's envelope).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from celeriac.brokers.base import MIN_PRIORITY, Delivery, OutboundMessage
from celeriac.exceptions import DecodeError, MessageTooLarge
from celeriac.messages.envelope import Message
from celeriac.messages.validation import parse_iso
from celeriac.messages.wire import WireFormat
from celeriac.migrate.tally import Problem, SkipReason


@dataclass(frozen=True)
class Converted:
    """A message ready for the target, and when it is due (None: now)."""

    outbound: OutboundMessage
    message: Message

    @property
    def waits_for_eta(self) -> bool:
        return self.outbound.delay is not None


def seconds_until(eta: object, now: float) -> float | None:
    """Seconds from ``now`` until an ``eta`` header; None when it has passed, or is not a
    time (the target's worker then reads it and reports it against the task)."""
    if not isinstance(eta, str):
        return None
    try:
        when = parse_iso(eta)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)  # a naive eta is UTC, as in Celery
    left = when.timestamp() - now
    return left if left > 0 else None


def convert(
    delivery: Delivery,
    source_format: WireFormat,
    target_format: WireFormat,
    target_queue: str,
    now: float,
    max_size: int | None = None,
) -> Converted | Problem:
    """``delivery`` as the target's message for ``target_queue``, or the problem that
    keeps it on the source."""
    try:
        message = source_format.decode(delivery.payload)
    except (DecodeError, MessageTooLarge) as exc:
        return Problem(delivery.message_id, SkipReason.UNDECODABLE, str(exc))
    # The priority the source handed it out with is on celeriac's scale (9 first): kombu's
    # reversed Redis priorities are turned round by that engine, RabbitMQ's are clamped.
    properties = {k: v for k, v in message.properties.items() if k != "priority"}
    if delivery.priority != MIN_PRIORITY:
        properties["priority"] = delivery.priority
    native = Message(
        headers=dict(message.headers),
        body=message.body,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        properties=properties,
    )
    payload = target_format.encode(native)
    if max_size is not None and len(payload) > max_size:
        detail = (
            f"{len(payload)} bytes, over task_message_max_size ({max_size}), so the target's "
            f"workers would refuse it: raise task_message_max_size for the move and the workers"
        )
        return Problem(native.id, SkipReason.REFUSED, detail)
    delay = seconds_until(native.headers.get("eta"), now)
    outbound = OutboundMessage(target_queue, payload, native.id, delivery.priority, delay)
    return Converted(outbound, native)


__all__ = ["Converted", "convert", "seconds_until"]
