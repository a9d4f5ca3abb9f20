"""Reading stream entries back: any software can write to the streams, so text that is
not UTF-8 is shown (with U+FFFD) and a field that is not a number falls back to its
default, never failing a read. Engine helper: imports ``brokers.base`` and ``keys``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.brokers.redis.keys import LEVELS, priority_of

_REASONS = frozenset(reason.value for reason in DeadLetterReason)


def text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def integer(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def read_dead_letter(queue: str, entry_id: Any, fields: Mapping[bytes, bytes]) -> DeadLetter:
    """A dead-letter stream entry (fields m, p, r, x, c, t, l, y: ``keys``). The scripts
    write them; one added by hand must not hide the others from ``celeriac dead-letters``."""
    level = min(max(integer(fields.get(b"l"), 0), 0), LEVELS - 1)
    priority = integer(fields.get(b"y"), -1)
    reason = text(fields.get(b"r", b""))
    return DeadLetter(
        entry_id=text(entry_id),
        queue=queue,
        message_id=text(fields.get(b"m", b"")),
        payload=bytes(fields.get(b"p", b"")),
        reason=DeadLetterReason(reason) if reason in _REASONS else DeadLetterReason.MALFORMED,
        detail=text(fields.get(b"x", b"")),
        delivery_count=integer(fields.get(b"c"), 0),
        dead_lettered_at=integer(fields.get(b"t"), 0) / 1000,
        priority=priority if 0 <= priority <= 9 else priority_of(level),
    )
