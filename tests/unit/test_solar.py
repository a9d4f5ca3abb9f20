"""``celeriac.schedules.solar``: Celery's solar events, due at whole seconds that every
host computes alike, with clear errors for a wrong event or place."""

from __future__ import annotations

import itertools
import pickle
from datetime import datetime, timedelta, timezone

import pytest

from celeriac.schedules import solar

UTC = timezone.utc
LONDON = (51.5074, -0.1278)


def test_sunset_is_due_once_a_day_at_whole_seconds_in_winter_afternoon() -> None:
    runs = solar("sunset", *LONDON).due_times(
        datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 8, tzinfo=UTC)
    )
    assert len(runs) == 7
    assert all(run.microsecond == 0 and run.tzinfo is not None for run in runs)
    assert all(15 <= run.hour < 16 for run in runs)  # London's December sunset: ~15:52 UTC
    gaps = {round((b - a).total_seconds() / 3600) for a, b in itertools.pairwise(runs)}
    assert gaps == {24}


def test_the_events_of_one_day_come_in_the_suns_order() -> None:
    events = [
        "dawn_astronomical", "dawn_nautical", "dawn_civil", "sunrise", "solar_noon",
        "sunset", "dusk_civil", "dusk_nautical", "dusk_astronomical",
    ]  # fmt: skip
    midnight = datetime(2026, 3, 20, 0, 0, tzinfo=UTC)
    times = [solar(event, *LONDON).due_after(midnight) for event in events]
    assert times == sorted(times)
    assert times[-1] - times[0] < timedelta(hours=24)


def test_a_polar_night_has_no_sunrise_until_the_sun_returns() -> None:
    # Longyearbyen (78°N): no sunrise from late October until mid-February
    first = solar("sunrise", 78.22, 15.65).due_after(datetime(2026, 12, 4, tzinfo=UTC))
    assert first.month == 2 and first.year == 2027


def test_is_due_after_a_missed_event_and_waits_for_the_next() -> None:
    now = datetime(2026, 12, 4, 16, 0, tzinfo=UTC)  # after London's sunset
    sunset = solar("sunset", *LONDON, nowfun=lambda: now)
    assert sunset.is_due(datetime(2026, 12, 4, 12, 0, tzinfo=UTC)).is_due
    waiting = sunset.is_due(datetime(2026, 12, 4, 15, 59, tzinfo=UTC))
    assert not waiting.is_due
    assert 23 * 3600 < waiting.next < 24 * 3600


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("sundown", 0, 0), "unknown solar event 'sundown': use one of dawn_astronomical"),
        (("sunset", 91, 0), "latitude 91 is out of range: it must be -90 to 90"),
        (("sunset", 0, -181), "longitude -181 is out of range: it must be -180 to 180"),
    ],
)
def test_a_wrong_event_or_place_is_refused_naming_it(
    args: tuple[str, float, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        solar(*args)


def test_a_solar_schedule_pickles_and_compares_by_event_and_place() -> None:
    noon = solar("solar_noon", 40.7, -74.0)
    assert pickle.loads(pickle.dumps(noon)) == noon
    assert noon != solar("solar_noon", 40.7, -73.0)
    assert repr(noon) == "<solar: solar_noon at latitude 40.7, longitude: -74.0>"
