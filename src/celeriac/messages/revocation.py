"""The revocation message: what ``revoke`` publishes on the revocations topic, in one format.

Every engine writes it with ``encode`` and every reader (the worker, the RabbitMQ record
reader) reads it with ``decode``, so the format is defined here and nowhere else. It is
JSON: ``{"revoke": [ids], "terminate": bool, "signal": "SIGTERM", "ttl": s, "at": unix}``.
Pure logic: imports the stdlib only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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
        signal = str(body.get("signal") or "SIGTERM")
        return Notice(tuple(ids), ttl, sent_at, bool(body.get("terminate")), signal)
    except (ValueError, TypeError, AttributeError):
        return None
