"""The revocation message: what ``revoke`` publishes on the revocations topic, in one format.

Every engine writes it with ``encode`` and every reader (the worker, the RabbitMQ record
reader) reads it with ``decode``, so the format is defined here and nowhere else. It is
JSON: ``{"revoke": [ids], "terminate": bool, "signal": "SIGTERM", "ttl": s, "at": unix}``.
A revocation by stamped header (``revoke_by_stamped_headers``) is recorded and announced
the same way, as keys beside the task ids: ``stamp:`` and the JSON of ``[name, value]``
(``stamp_key``), one per value. Pure logic: imports the stdlib only.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: The channel topic revocations are announced on (a broadcast topic).
TOPIC = "celeriac.revocations"


@dataclass(frozen=True, slots=True, eq=False)
class Revocation:
    """Tasks were revoked: what a running worker is told at once."""

    # task id -> unix time (this process's clock) after which it may be forgotten
    expires: Mapping[str, float]
    terminate: bool = False  # also stop the task if it is running now
    signal: str = "SIGTERM"  # how to stop it ("SIGTERM", "SIGKILL", ...)

    @property
    def task_ids(self) -> tuple[str, ...]:
        return tuple(self.expires)


@dataclass(frozen=True, slots=True)
class Notice:
    """A decoded revocation message."""

    task_ids: tuple[str, ...]
    ttl: float  # seconds the revocation lasts, from when it was sent
    sent_at: float  # unix time on the sender's clock
    terminate: bool
    signal: str

    def heard_now(self) -> Revocation:
        """As heard live: the ttl counts from now on this process's clock (the sender's
        clock may be skewed; a live message is at most a round trip old)."""
        ends = time.time() + self.ttl
        return Revocation(dict.fromkeys(self.task_ids, ends), self.terminate, self.signal)

    @property
    def ends(self) -> float:
        """When it ends on the sender's clock: for a record read back later."""
        return self.sent_at + self.ttl


def encode(task_ids: Sequence[str], ttl: float, terminate: bool, signal: str) -> bytes:
    body = {"revoke": list(task_ids), "terminate": terminate, "signal": signal,
            "ttl": ttl, "at": time.time()}  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def decode(data: bytes | str) -> Notice | None:
    """The notice in ``data``; None for anything else (another command, or garbage)."""
    try:
        body = json.loads(data)
        ids = body.get("revoke") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None
        ttl = float(body.get("ttl", 0))
        sent_at = float(body.get("at", time.time()))
        if not (math.isfinite(ttl) and math.isfinite(sent_at)):
            return None  # NaN would never end (every comparison with it is false)
        signal = body.get("signal") or "SIGTERM"
        if not isinstance(signal, str):
            return None
        return Notice(tuple(ids), ttl, sent_at, bool(body.get("terminate")), signal)
    except (ValueError, TypeError, AttributeError, RecursionError, OverflowError):
        return None


# -- revocations by stamped header --------------------------------------------------------
STAMP_PREFIX = "stamp:"

#: A stamp in the form revocations compare it: (name, the value's canonical JSON).
Stamp = tuple[str, str]


def canonical(value: Any) -> str:
    """A stamp value as revocations compare it: JSON with sorted keys (``1`` and ``"1"``
    differ, as they do on the wire)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _each(value: Any) -> list[Any]:
    """A list of values stands for each of them, as in Celery (either side may be one)."""
    return list(value) if isinstance(value, (list, tuple)) else [value]


def stamp_keys(headers: Mapping[str, Any]) -> list[str]:
    """The record's keys for ``{name: value or [values]}``: one per (name, value)."""
    keys = []
    for name, value in headers.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stamped header's name must be a non-empty string, not {name!r}")
        for item in _each(value):
            try:
                keys.append(STAMP_PREFIX + canonical([name, item]))
            except (TypeError, ValueError):
                raise TypeError(
                    f"the value {item!r} of stamped header {name!r} is not JSON data: stamps "
                    "are compared as they travel (strings, numbers, lists...)"
                ) from None
    return keys


def is_stamp_key(key: str) -> bool:
    return key.startswith(STAMP_PREFIX + "[")


def parse_stamp_key(key: str) -> Stamp | None:
    """The stamp a record key revokes; None for a task id (or anything unreadable)."""
    if not is_stamp_key(key):
        return None
    try:
        name, value = json.loads(key[len(STAMP_PREFIX) :])
        return (name, canonical(value)) if isinstance(name, str) else None
    except (ValueError, TypeError, RecursionError):
        return None


def stamps_of(stamps: Mapping[str, Any]) -> Iterator[Stamp]:
    """A task's stamps (``request.stamps``) in the form revocations compare them."""
    for name, value in stamps.items():
        for item in _each(value):
            try:
                yield (name, canonical(item))
            except (TypeError, ValueError, RecursionError):  # no revocation can name it
                continue


def revoking_stamp(stamps: Mapping[str, Any], revoked: Callable[[Stamp], bool]) -> Stamp | None:
    """The first of a task's stamps for which ``revoked`` holds; None if none does."""
    return next((stamp for stamp in stamps_of(stamps) if revoked(stamp)), None)
