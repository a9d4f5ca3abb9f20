"""Solar event times for ``celeriac.schedules.solar``, computed with ``astral``.

Leaf module: the standard library and ``astral`` (an optional dependency, imported when a
solar schedule is made). Times are cut to whole seconds, so every host running the same
``astral`` computes the same instant and beat can tell runs apart by it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

#: Celery's event names, each with astral's function and the sun's depression below the
#: horizon in degrees (None: astral's own, the upper limb with refraction).
EVENTS: dict[str, tuple[str, float | None]] = {
    "dawn_astronomical": ("dawn", 18.0),
    "dawn_nautical": ("dawn", 12.0),
    "dawn_civil": ("dawn", 6.0),
    "sunrise": ("sunrise", None),
    "solar_noon": ("noon", None),
    "sunset": ("sunset", None),
    "dusk_civil": ("dusk", 6.0),
    "dusk_nautical": ("dusk", 12.0),
    "dusk_astronomical": ("dusk", 18.0),
}

#: How far to look for an event that some days do not have (polar day and night).
MAX_SEARCH_DAYS = 366

MISSING = (
    "solar schedules compute sunrise and sunset with the astral library, which is not "
    "installed: pip install 'celeriac[solar]'"
)


def load_astral() -> ModuleType:
    try:
        from astral import sun
    except ImportError as exc:
        raise ImproperlyConfigured(MISSING) from exc
    return sun


def event_on(sun: ModuleType, event: str, lat: float, lon: float, day: date) -> datetime | None:
    """The event's UTC time on ``day`` (whole seconds), or None when it does not happen."""
    from astral import Observer

    name, depression = EVENTS[event]
    function: Callable[..., datetime] = getattr(sun, name)
    kwargs: dict[str, Any] = {"tzinfo": timezone.utc}
    if depression is not None:
        kwargs["depression"] = depression
    try:
        moment = function(Observer(latitude=lat, longitude=lon), day, **kwargs)
    except ValueError:  # the sun never reaches that depression on this day, here
        return None
    return moment.replace(microsecond=0)


def next_event(event: str, lat: float, lon: float, after: datetime) -> datetime | None:
    """The first time the event happens strictly after ``after`` (aware), in UTC; None
    when it does not happen within ``MAX_SEARCH_DAYS``."""
    sun = load_astral()
    start = after.astimezone(timezone.utc).date() - timedelta(days=1)
    for offset in range(MAX_SEARCH_DAYS + 2):
        moment = event_on(sun, event, lat, lon, start + timedelta(days=offset))
        if moment is not None and moment > after:
            return moment
    return None


__all__ = ["EVENTS", "MAX_SEARCH_DAYS", "event_on", "load_astral", "next_event"]
