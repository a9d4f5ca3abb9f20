"""Revocations on Redis: the record, and how its times reach this process's clock.

A revoke is one script (``revoke.lua``): the sorted set ``{prefix}:revoked`` keeps it for
workers that start later, and a PUBLISH of the ``messages.revocation`` format on the
``REVOCATIONS`` topic's channel (``channel.topic_key``) tells the running ones, atomically.
Engine helper: imports ``brokers.base``, ``messages.revocation`` and its own ``channel``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from celeriac.brokers.base import REVOCATIONS
from celeriac.brokers.redis.channel import topic_key
from celeriac.messages import revocation


def revoke_args(prefix: str, ids: list[str], ttl: float, terminate: bool, signal: str) -> list[Any]:
    """``revoke.lua``'s arguments: ttl ms, the topic's channel, the message, the ids."""
    message = revocation.encode(ids, ttl, terminate, signal)
    return [max(1, int(ttl * 1000)), topic_key(prefix, REVOCATIONS), message, *ids]


def local_expiries(rows: Sequence[Any]) -> dict[str, float]:
    """``revoked.lua``'s {now ms, id, end ms, ...} -> id -> end on this process's clock."""
    now_ms, local = int(rows[0]), time.time()
    found: dict[str, float] = {}
    for index in range(1, len(rows) - 1, 2):
        task_id = rows[index]
        task_id = task_id.decode() if isinstance(task_id, bytes) else str(task_id)
        found[task_id] = local + (float(rows[index + 1]) - now_ms) / 1000
    return found
