"""Reading dead letters back from ``_celeriac.dead.<queue>`` (a stream of celeriac's own).

Fields: i = the envelope as it was on the list, r = reason, x = detail, c = delivery
count, t = when (ms), l = the list's priority step index, g = delivery tag. Anything can
write to a stream, so a field that is missing or not a number falls back to a default,
never failing a read. The payload is as the broker's wire format joins it from the envelope.
Engine helper: imports ``brokers.base``, ``envelope``, ``messages.wire``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.brokers.kombu_redis import envelope
from celeriac.messages.wire import NATIVE, WireFormat

_REASONS = frozenset(reason.value for reason in DeadLetterReason)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _integer(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def read_dead_letter(
    queue: str,
    entry_id: Any,
    fields: Mapping[bytes, bytes],
    steps: tuple[int, ...],
    wire_format: WireFormat = NATIVE,
) -> DeadLetter:
    stored = envelope.read(bytes(fields.get(b"i", b"")), wire_format)
    step = steps[min(max(_integer(fields.get(b"l"), 0), 0), len(steps) - 1)]
    reason = _text(fields.get(b"r", b""))
    return DeadLetter(
        entry_id=_text(entry_id),
        queue=queue,
        message_id=stored.message_id,
        payload=stored.payload,
        reason=DeadLetterReason(reason) if reason in _REASONS else DeadLetterReason.MALFORMED,
        detail=_text(fields.get(b"x", b"")),
        delivery_count=_integer(fields.get(b"c"), 0),
        dead_lettered_at=_integer(fields.get(b"t"), 0) / 1000,
        priority=9 - step if stored.priority is None else stored.priority,
    )
