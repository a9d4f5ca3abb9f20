"""Which due times of an entry to send now: its misfire policy, as pure arithmetic.

Runtime layer (beat); imports ``celeriac.schedules`` and the stdlib only, so the policy is
tested with plain datetimes (no clock, no broker). The three policies:

- ``latest``: one run for everything missed, the latest due time (Celery's behaviour).
- ``all``: each missed due time, at most ``max_catchup`` (the latest ones).
- ``none``: only due times that came due while this scheduler was leading (after
  ``since``, its previous look); what came due while no scheduler led is skipped.

``misfire_grace_time`` applies to all three: a due time more than that many seconds old is
skipped.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from datetime import datetime

from celeriac.schedules import BaseSchedule

_CHUNK = 10_000  # due times asked of the schedule at once when walking a long outage


@dataclass(frozen=True)
class Plan:
    """What to do for one entry at one tick."""

    send: list[datetime] = field(default_factory=list)  # due times to send, oldest first
    skipped: int = 0  # due times in the window not sent
    through: datetime | None = None  # the latest due time handled (None: none came due)


def _latest(
    schedule: BaseSchedule, after: datetime, until: datetime, keep: int
) -> tuple[list[datetime], int]:
    """The last ``keep`` due times in ``(after, until]`` and how many there are in all."""
    tail: collections.deque[datetime] = collections.deque(maxlen=keep)
    total, cursor = 0, after
    while True:
        chunk = schedule.due_times(cursor, until, limit=_CHUNK)
        total += len(chunk)
        tail.extend(chunk)
        if len(chunk) < _CHUNK:
            return list(tail), total
        cursor = chunk[-1]


def plan(
    schedule: BaseSchedule,
    last: datetime,
    now: datetime,
    *,
    catchup: str,
    max_catchup: int,
    grace: float | None,
    since: datetime,
) -> Plan:
    """The due times in ``(last, now]`` to send now, under the policy."""
    keep = 1 if catchup == "latest" else max_catchup
    due, total = _latest(schedule, last, now, keep)
    if not due:
        return Plan()
    fresh = [d for d in due if grace is None or (now - d).total_seconds() <= grace]
    if catchup == "latest":
        send = fresh[-1:]
    elif catchup == "all":
        send = fresh
    else:
        send = [d for d in fresh if d > since]
    return Plan(send, total - len(send), due[-1])
