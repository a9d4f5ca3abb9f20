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


def _counted(value: Any, default: int, low: int, high: int) -> int | None:
    """An integer field as the fetch script reads it (``tonumber``: "2" and "2.0" are 2),
    ``default`` when absent, None when it is not an integer from ``low`` to ``high``."""
    if value is None:
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not number.is_integer() or not low <= number <= high:
        return None
    return int(number)


def flaw(fields: Mapping[bytes, Any]) -> str | None:
    """Why a ready-stream entry cannot be handed out (other software wrote it), or None:
    the fetch script's own check, for the entries a blocking read hands out."""
    if b"m" not in fields or b"p" not in fields:
        return "stream entry lacks the m or p field"
    if _counted(fields.get(b"d"), 0, 0, 2147483647) is None:
        return "stream entry field d (deliveries before) is not a count"
    if _counted(fields.get(b"y"), -1, -1, 9) is None:
        return "stream entry field y (priority) is not an integer from 0 to 9"
    return None


def deliveries_before(fields: Mapping[bytes, Any]) -> int:
    """Field d of an entry ``flaw`` passed: the deliveries before it was written again."""
    return _counted(fields.get(b"d"), 0, 0, 2147483647) or 0


def priority_field(fields: Mapping[bytes, Any]) -> int:
    """Field y of an entry ``flaw`` passed: its own priority, or -1 (its level's)."""
    value = _counted(fields.get(b"y"), -1, -1, 9)
    return -1 if value is None else value
