"""Rate strings (``'10/m'``) read into tasks per second; the rate-limit scopes; and the
exponential backoff of ``autoretry_for`` retries.

Pure logic, imports nothing from celeriac: task definitions check their options with it,
the worker's token buckets use it.
"""

from __future__ import annotations

import random

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
SCOPES = ("worker", "cluster")


def parse_rate(rate: str | int | float | None) -> float | None:
    """Tasks per second from Celery's forms: ``'10/m'``, ``'5/s'``, ``'100/h'``, or a number
    (per second). None or 0 means no limit; anything else raises with the accepted forms."""
    if rate is None or rate == 0 or rate == "":
        return None
    if isinstance(rate, (int, float)):
        return float(rate) if rate > 0 else None
    text = str(rate).strip()
    count, _, unit = text.partition("/")
    try:
        value = float(count)
    except ValueError:
        value = -1.0
    if value < 0 or (unit and unit[:1] not in _UNITS):
        raise ValueError(
            f"rate limit {rate!r} is not understood: use 'N/s', 'N/m', 'N/h' or a number "
            f"of tasks per second (e.g. rate_limit='10/m')"
        )
    return value / _UNITS[unit[:1] or "s"] if value > 0 else None


def check_scope(scope: str | None) -> None:
    if scope is not None and scope not in SCOPES:
        raise ValueError(f"rate_limit_scope {scope!r} is not one of {', '.join(map(repr, SCOPES))}")


def exponential_backoff(factor: float, retries: int, maximum: float, full_jitter: bool) -> float:
    """Seconds before retry number ``retries + 1``: ``factor * 2**retries``, capped, jittered."""
    countdown = min(maximum, factor * (2**retries))
    if full_jitter:
        countdown = random.uniform(0, countdown)  # "full jitter": anywhere in [0, cap]
    return max(0.0, float(countdown))
