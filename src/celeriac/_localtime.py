"""Wall-clock time in a zone, mapped to instants with one rule for DST (schedules use it).

Leaf module (stdlib only). A local time the clock skips (spring forward) maps to the first
whole local minute after the gap; a local time the clock shows twice (fall back) maps to its
first occurrence. So counting forward on the wall clock never goes back in real time.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone, tzinfo

__all__ = [
    "aware_utc", "first_instant", "is_imaginary", "local_zone", "naive_local", "require_aware",
]  # fmt: skip

_MINUTE = timedelta(minutes=1)
# The longest gap on record is a whole day (Samoa, 2011-12-30); a little more is plenty.
_LONGEST_GAP = timedelta(days=2)


def require_aware(moment: datetime, name: str) -> None:
    """Refuse a naive datetime: which instant it means would depend on the host."""
    if not isinstance(moment, datetime):
        raise TypeError(f"{name} must be a datetime, not {moment!r}")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(
            f"{name}={moment!r} is naive: pass an aware datetime, e.g. datetime.now(timezone.utc)"
        )


def local_zone() -> tzinfo:
    """The host's time zone, with its DST rules: ``$TZ`` if it names a zone, else
    ``/etc/localtime``; failing both, the host's current UTC offset."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # (loaded by the first caller)

    name = os.environ.get("TZ", "").lstrip(":")
    if name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass  # a POSIX rule string rather than a zone name: ask the C library below
    try:
        with open("/etc/localtime", "rb") as zone_file:
            return ZoneInfo.from_file(zone_file, key="localtime")
    except (OSError, ValueError):
        offset = datetime.now().astimezone().tzinfo
        return offset if offset is not None else timezone.utc


def aware_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is read as UTC (as Celery's schedules do)."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def naive_local(moment: datetime, zone: tzinfo) -> datetime:
    """The wall-clock reading of the instant ``moment`` in ``zone``, without a zone."""
    return aware_utc(moment).astimezone(zone).replace(tzinfo=None, fold=0)


def is_imaginary(local: datetime, zone: tzinfo) -> bool:
    """True when the clock in ``zone`` never shows the naive ``local`` (a DST gap)."""
    attached = local.replace(tzinfo=zone, fold=0)
    return attached.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None) != local


def first_instant(local: datetime, zone: tzinfo) -> datetime:
    """The UTC instant of the naive wall-clock time ``local`` in ``zone`` (rule above)."""
    moved = local
    while is_imaginary(moved, zone):
        moved = moved.replace(second=0, microsecond=0) + _MINUTE
        if moved - local > _LONGEST_GAP:
            raise ValueError(f"{local} never appears on the clock in {zone}")
    return moved.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
