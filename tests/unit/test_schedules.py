"""Schedules: Celery's crontab field syntax and errors, is_due and remaining_estimate on a
fake clock, and exact due times across DST in several zones (named cases and properties)."""

from __future__ import annotations

import functools
import pickle
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from celeriac import Celery
from celeriac.schedules import (
    BaseSchedule,
    ParseException,
    crontab,
    crontab_parser,
    maybe_schedule,
    schedstate,
    schedule,
)

UTC = timezone.utc


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Clock:
    """A fake clock the schedules read through ``nowfun``."""

    def __init__(self, now: datetime) -> None:
        self.current = now

    def __call__(self) -> datetime:
        return self.current


def local_times(schedule_: crontab, moments: list[datetime]) -> list[str]:
    return [m.astimezone(schedule_.tz).strftime("%m-%d %H:%M%z") for m in moments]


# -- Celery's field syntax --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "spec", "expected"),
    [
        ("minute", "*/15", {0, 15, 30, 45}),
        ("minute", "1,13,30-45,50-59/2", {1, 13, *range(30, 46), *range(50, 60, 2)}),
        ("minute", 7, {7}),
        ("minute", [0, 30], {0, 30}),
        ("minute", range(0, 60, 20), {0, 20, 40}),
        ("hour", "0,8-17/2", {0, 8, 10, 12, 14, 16}),
        ("hour", "22-2", {22, 23, 0, 1, 2}),
        ("hour", {3, 4}, {3, 4}),
        ("day_of_week", "mon-fri", {1, 2, 3, 4, 5}),
        ("day_of_week", "sun", {0}),
        ("day_of_week", "Sunday,saturday", {0, 6}),
        ("day_of_week", "sat-mon", {6, 0, 1}),
        ("day_of_week", "*/2", {0, 2, 4, 6}),
        ("day_of_month", "2-30/2", set(range(2, 31, 2))),
        ("day_of_month", "1-7,15-21", {*range(1, 8), *range(15, 22)}),
        ("month_of_year", "*/3", {1, 4, 7, 10}),
        ("month_of_year", "2-12/2", {2, 4, 6, 8, 10, 12}),
        ("month_of_year", "jan-mar", {1, 2, 3}),
    ],
)
def test_fields_read_celerys_syntax(field: str, spec: object, expected: set[int]) -> None:
    schedule_ = crontab(**{field: spec})
    assert getattr(schedule_, field) == expected


def test_crontab_parser_reads_a_field_alone() -> None:
    assert crontab_parser(60).parse("*/15") == {0, 15, 30, 45}
    assert crontab_parser(24).parse("*/4") == {0, 4, 8, 12, 16, 20}
    assert crontab_parser(7).parse("*") == set(range(7))
    assert crontab_parser(31, 1).parse("*/3") == set(range(1, 32, 3))
    assert crontab_parser(12, 1).parse("2-12/2") == {2, 4, 6, 8, 10, 12}
    with pytest.raises(crontab_parser.ParseException):
        crontab_parser(60).parse("1,,2")


@pytest.mark.parametrize(
    ("fields", "error", "says"),
    [
        ({"hour": 24}, ValueError, "hour takes 0-23"),
        ({"minute": "60"}, ValueError, "field takes 0-59"),
        ({"day_of_week": 7}, ValueError, "Sunday is 0"),
        ({"day_of_month": 0}, ValueError, "day_of_month takes 1-31"),
        ({"month_of_year": "13"}, ValueError, "takes 1-12"),
        ({"minute": "*/0"}, ParseException, "whole number above 0"),
        ({"minute": "*/"}, ParseException, "empty step"),
        ({"minute": "1,,2"}, ParseException, "empty part"),
        ({"minute": "5/2"}, ParseException, "'5-59/2'"),
        ({"minute": "-5"}, ParseException, "not a crontab part"),
        ({"hour": "mon"}, ParseException, "use a whole number"),
        ({"day_of_week": "funday"}, ParseException, "a name such as 'sun'"),
        ({"minute": [1, "2"]}, TypeError, "'2' is not a whole number"),
        ({"minute": 1.5}, TypeError, "collection of ints"),
        ({"minute": True}, TypeError, "bool"),
        ({"minute": []}, ValueError, "names no value"),
        ({"day_of_month": 30, "month_of_year": 2}, ValueError, "never occurs"),
        ({"day_of_month": "31", "month_of_year": "apr,jun"}, ValueError, "never occurs"),
    ],
)
def test_a_bad_field_names_the_field_and_the_fix(
    fields: dict[str, object], error: type[Exception], says: str
) -> None:
    with pytest.raises(error) as caught:
        crontab(**fields)
    message = str(caught.value)
    assert says in message
    assert next(iter(fields)) in message
    if "never occurs" not in message:
        assert "for example" in message


def test_parse_errors_are_value_errors_as_in_celery() -> None:
    assert issubclass(ParseException, ValueError)


def test_from_string_reads_a_cron_line() -> None:
    line = crontab.from_string("*/10 9-17 1,15 * mon-fri")
    assert line == crontab("*/10", "9-17", "mon-fri", "1,15", "*")
    with pytest.raises(ValueError, match="five fields"):
        crontab.from_string("0 9 * *")


def test_repr_equality_hash_and_pickle() -> None:
    weekly = crontab(minute=0, hour=9, day_of_week="mon", tz="Europe/London")
    assert repr(weekly) == "<crontab: 0 9 * * mon (m/h/dM/MY/d) Europe/London>"
    assert repr(crontab()) == "<crontab: * * * * * (m/h/dM/MY/d)>"
    assert weekly == crontab(minute="0", hour=[9], day_of_week=1, tz=ZoneInfo("Europe/London"))
    assert weekly != crontab(minute=0, hour=9, day_of_week="mon")
    assert len({weekly, crontab(0, 9, "mon", tz="Europe/London")}) == 1
    assert pickle.loads(pickle.dumps(weekly)) == weekly
    assert repr(schedule(30)) == "<freq: 30.00 seconds>"
    assert repr(schedule(timedelta(hours=1))) == "<freq: 1.00 hour>"
    assert schedule(30) == schedule(timedelta(seconds=30)) == timedelta(seconds=30)
    assert pickle.loads(pickle.dumps(schedule(30, relative=True))) == schedule(30, relative=True)


def test_maybe_schedule() -> None:
    assert maybe_schedule(30) == schedule(30)
    assert maybe_schedule(timedelta(minutes=1)) == schedule(60)
    hourly = crontab(minute=0)
    assert maybe_schedule(hourly) is hourly
    assert maybe_schedule(None) is None
    with pytest.raises(TypeError, match="a schedule must be"):
        maybe_schedule("every day")


def test_an_unknown_zone_says_what_to_use() -> None:
    with pytest.raises(ValueError, match="IANA name"):
        crontab(tz="Mars/Olympus")


# -- is_due and remaining_estimate (Celery's contract) ----------------------------------------


def test_interval_is_due_every_run_every_seconds() -> None:
    clock = Clock(at(2025, 1, 1, 12, 0, 10))
    every_30s = schedule(30, nowfun=clock)
    assert every_30s.is_due(at(2025, 1, 1, 12, 0, 0)) == schedstate(False, 20.0)
    assert every_30s.remaining_estimate(at(2025, 1, 1, 12, 0, 0)) == timedelta(seconds=20)
    clock.current = at(2025, 1, 1, 12, 0, 30)
    assert every_30s.is_due(at(2025, 1, 1, 12, 0, 0)) == (True, 30.0)
    clock.current = at(2025, 1, 1, 12, 5)  # long overdue: one run, then every 30 s
    assert every_30s.is_due(at(2025, 1, 1, 12, 0, 0)) == (True, 30.0)
    assert every_30s.remaining_estimate(at(2025, 1, 1, 12)) == timedelta(seconds=-270)


def test_a_naive_clock_and_last_run_are_read_as_utc() -> None:
    every_minute = schedule(60, nowfun=lambda: datetime(2025, 1, 1, 12, 0, 30))
    assert every_minute.is_due(datetime(2025, 1, 1, 12, 0, 0)) == (False, 30.0)


def test_relative_interval_rounds_to_the_interval_resolution() -> None:
    clock = Clock(at(2025, 1, 1, 10, 30))
    in_utc = SimpleNamespace(conf=SimpleNamespace(timezone=None))
    hourly = schedule(timedelta(hours=1), relative=True, nowfun=clock, app=in_utc)
    # Ran at 10:07: the next run is on the hour, 11:00, not 11:07.
    assert hourly.remaining_estimate(at(2025, 1, 1, 10, 7)) == timedelta(minutes=30)
    clock.current = at(2025, 1, 1, 11, 0, 5)
    due, next_check = hourly.is_due(at(2025, 1, 1, 10, 7))
    assert due and next_check == 3595.0  # realigned to 12:00
    # The exact due times lie on the hour too.
    assert hourly.due_after(at(2025, 1, 1, 10, 7)) == at(2025, 1, 1, 11)
    plain = schedule(timedelta(hours=1), nowfun=clock)
    assert plain.remaining_estimate(at(2025, 1, 1, 10, 7)) == timedelta(minutes=6, seconds=55)


def test_relative_seconds_round_to_the_whole_second() -> None:
    clock = Clock(at(2025, 1, 1, 10, 0, 10, 250000))
    in_utc = SimpleNamespace(conf=SimpleNamespace(timezone=None))
    every_30s = schedule(30, relative=True, nowfun=clock, app=in_utc)
    last = at(2025, 1, 1, 10, 0, 0, 700000)  # next run at 10:00:30, not 10:00:30.7
    assert every_30s.remaining_estimate(last) == timedelta(seconds=19, microseconds=750000)


def test_relative_days_follow_the_local_calendar() -> None:
    app = SimpleNamespace(conf=SimpleNamespace(timezone="America/New_York"))
    clock = Clock(at(2025, 3, 8, 12))
    daily = schedule(timedelta(days=1), relative=True, nowfun=clock, app=app)
    # Ran on Saturday 2025-03-08 at 07:00 local; next is local midnight Sunday (05:00Z).
    assert daily.remaining_estimate(at(2025, 3, 8, 12)) == timedelta(hours=17)
    # Across spring forward the local midnights are 23 hours apart.
    times = daily.due_times(at(2025, 3, 8, 12), at(2025, 3, 11, 12))
    assert times == [at(2025, 3, 9, 5), at(2025, 3, 10, 4), at(2025, 3, 11, 4)]


def test_crontab_is_due_as_celery_documents() -> None:
    clock = Clock(at(2025, 6, 2, 10, 30))
    hourly = crontab(minute=0, nowfun=clock)
    assert hourly.is_due(at(2025, 6, 2, 10, 0)) == (False, 1800.0)
    assert hourly.remaining_estimate(at(2025, 6, 2, 10, 0)) == timedelta(minutes=30)
    clock.current = at(2025, 6, 2, 11, 0, 5)
    assert hourly.is_due(at(2025, 6, 2, 10, 0)) == (True, 3595.0)
    weekdays_at_9 = crontab(minute=0, hour=9, day_of_week="mon-fri", nowfun=clock)
    clock.current = at(2025, 6, 6, 12)  # Friday noon: next is Monday 09:00
    assert weekdays_at_9.is_due(at(2025, 6, 6, 9)) == (False, (69 * 3600.0))


def test_the_app_timezone_setting_is_the_default_zone() -> None:
    app = Celery("t", broker="memory://")
    try:
        app.conf.timezone = "Asia/Kolkata"
        morning = crontab(minute=0, hour=9, app=app)
        assert morning.tz == ZoneInfo("Asia/Kolkata")
        assert morning.due_after(at(2025, 1, 1)) == at(2025, 1, 1, 3, 30)
        assert crontab(0, 9, tz="UTC", app=app).due_after(at(2025, 1, 1)) == at(2025, 1, 1, 9)
        app.conf.timezone = None
        assert morning.due_after(at(2025, 1, 1)) == at(2025, 1, 1, 9)
    finally:
        app.close()


# -- exact due times ---------------------------------------------------------------------------


def test_due_after_and_due_times() -> None:
    quarter = crontab(minute="*/15", tz="UTC")
    assert quarter.due_after(at(2025, 1, 1, 10, 0)) == at(2025, 1, 1, 10, 15)
    assert quarter.due_after(at(2025, 1, 1, 10, 14, 59, 999999)) == at(2025, 1, 1, 10, 15)
    times = quarter.due_times(at(2025, 1, 1, 10), at(2025, 1, 1, 11))
    assert times == [at(2025, 1, 1, 10, 15), at(2025, 1, 1, 10, 30), at(2025, 1, 1, 10, 45),
                     at(2025, 1, 1, 11)]  # fmt: skip
    assert quarter.due_times(at(2025, 1, 1, 10), at(2025, 1, 2), limit=2) == times[:2]
    assert quarter.due_times(at(2025, 1, 1, 10), at(2025, 1, 1, 10, 14)) == []
    assert all(moment.tzinfo is UTC for moment in times)
    # Any split of a window gives the same due times: a scheduler can resume anywhere.
    split = at(2025, 1, 1, 10, 37, 12)
    assert (
        quarter.due_times(at(2025, 1, 1, 10), split) + quarter.due_times(split, at(2025, 1, 1, 11))
        == times
    )


def test_interval_due_times_lie_on_a_fixed_grid() -> None:
    every_30s = schedule(30)
    assert every_30s.due_after(at(2025, 1, 1, 0, 0, 10)) == at(2025, 1, 1, 0, 0, 30)
    assert every_30s.due_after(at(2025, 1, 1, 0, 0, 30)) == at(2025, 1, 1, 0, 1)
    assert every_30s.due_times(at(2025, 1, 1), at(2025, 1, 1, 0, 1, 40)) == [
        at(2025, 1, 1, 0, 0, 30),
        at(2025, 1, 1, 0, 1),
        at(2025, 1, 1, 0, 1, 30),
    ]
    with pytest.raises(ValueError, match="positive"):
        schedule(0).due_after(at(2025, 1, 1))


def test_due_times_refuse_a_naive_moment() -> None:
    with pytest.raises(ValueError, match="naive"):
        crontab().due_after(datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        schedule(5).due_times(at(2025, 1, 1), datetime(2025, 1, 2))
    with pytest.raises(ValueError, match="limit"):
        schedule(5).due_times(at(2025, 1, 1), at(2025, 1, 2), limit=-1)


def test_first_monday_needs_both_day_fields_as_in_celery() -> None:
    first_monday = crontab(minute=0, hour=8, day_of_week="mon", day_of_month="1-7")
    times = first_monday.due_times(at(2025, 1, 1), at(2025, 5, 1))
    assert [t.date().isoformat() for t in times] == [
        "2025-01-06",
        "2025-02-03",
        "2025-03-03",
        "2025-04-07",
    ]
    leap_monday = crontab(0, 0, day_of_week="mon", day_of_month=29, month_of_year=2)
    assert leap_monday.due_times(at(2025, 1, 1), at(2080, 1, 1)) == [
        at(2044, 2, 29),
        at(2072, 2, 29),
    ]


# -- DST: named cases --------------------------------------------------------------------------


def test_new_york_spring_forward_2025_03_09() -> None:
    # 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that night.
    nightly = crontab(minute=30, hour=2, tz="America/New_York")
    times = nightly.due_times(at(2025, 3, 8), at(2025, 3, 11))
    assert local_times(nightly, times) == [
        "03-08 02:30-0500",
        "03-09 03:00-0400",  # once, at the first minute after the gap
        "03-10 02:30-0400",
    ]
    # Two fields that both land at 03:00 that night still fire once.
    two_and_three = crontab(minute=0, hour="2,3", tz="America/New_York")
    times = two_and_three.due_times(at(2025, 3, 9, 5), at(2025, 3, 9, 10))
    assert local_times(two_and_three, times) == ["03-09 03:00-0400"]
    half_hourly = crontab(minute="*/30", tz="America/New_York")
    times = half_hourly.due_times(at(2025, 3, 9, 6), at(2025, 3, 9, 8))
    assert local_times(half_hourly, times) == [
        "03-09 01:30-0500",
        "03-09 03:00-0400",
        "03-09 03:30-0400",
        "03-09 04:00-0400",
    ]


def test_new_york_fall_back_2025_11_02() -> None:
    # 02:00 EDT falls back to 01:00 EST: 01:xx happens twice and fires the first time only.
    nightly = crontab(minute=30, hour=1, tz="America/New_York")
    times = nightly.due_times(at(2025, 11, 1), at(2025, 11, 4))
    assert local_times(nightly, times) == [
        "11-01 01:30-0400",
        "11-02 01:30-0400",
        "11-03 01:30-0500",
    ]
    hourly = crontab(minute=0, tz="America/New_York")
    times = hourly.due_times(at(2025, 11, 2, 4), at(2025, 11, 2, 8))
    assert local_times(hourly, times) == [
        "11-02 01:00-0400",
        "11-02 02:00-0500",  # 01:00 EST (06:00Z) is the same wall time again: skipped
        "11-02 03:00-0500",
    ]
    # Asked from inside the second 01:xx, the next due time is after it, not the first 01:30.
    assert nightly.due_after(at(2025, 11, 2, 6, 10)) == at(2025, 11, 3, 6, 30)


def test_london_fall_back_2024_10_27() -> None:
    quarter_past_one = crontab(minute="*/15", hour=1, tz="Europe/London")
    times = quarter_past_one.due_times(at(2024, 10, 26, 12), at(2024, 10, 28))
    assert local_times(quarter_past_one, times) == [
        "10-27 01:00+0100",
        "10-27 01:15+0100",
        "10-27 01:30+0100",
        "10-27 01:45+0100",
    ]
    assert times[-1] == at(2024, 10, 27, 0, 45)


def test_lord_howe_moves_its_clock_by_30_minutes() -> None:
    quarterly = crontab(minute="*/15", tz="Australia/Lord_Howe")
    # 2025-10-05 02:00 (+10:30) jumps to 02:30 (+11:00).
    times = quarterly.due_times(at(2025, 10, 4, 15), at(2025, 10, 4, 16))
    assert local_times(quarterly, times) == [
        "10-05 01:45+1030",
        "10-05 02:30+1100",  # 02:00 and 02:15 do not exist: one run at 02:30
        "10-05 02:45+1100",
        "10-05 03:00+1100",
    ]
    two_am = crontab(minute=0, hour=2, tz="Australia/Lord_Howe")
    assert two_am.due_after(at(2025, 10, 4)) == at(2025, 10, 4, 15, 30)
    # 2025-04-06 02:00 (+11:00) falls back to 01:30 (+10:30): 01:30-01:59 happen twice.
    one_am = crontab(minute="*/15", hour=1, tz="Australia/Lord_Howe")
    times = one_am.due_times(at(2025, 4, 5, 12), at(2025, 4, 6, 12))
    assert local_times(one_am, times) == [
        "04-06 01:00+1100",
        "04-06 01:15+1100",
        "04-06 01:30+1100",
        "04-06 01:45+1100",
    ]


def test_samoa_skipped_a_whole_day_in_2011() -> None:
    # 2011-12-29 23:59:59 (-10:00) was followed by 2011-12-31 00:00 (+14:00).
    noon = crontab(minute=0, hour=12, tz="Pacific/Apia")
    times = noon.due_times(at(2011, 12, 28), at(2011, 12, 31, 12))
    assert local_times(noon, times) == [
        "12-28 12:00-1000",
        "12-29 12:00-1000",
        "12-31 00:00+1400",  # the 30th's noon, at the first minute after the gap
        "12-31 12:00+1400",
    ]
    every_minute = crontab(tz="Pacific/Apia")
    times = every_minute.due_times(at(2011, 12, 30, 9, 58), at(2011, 12, 30, 10, 1))
    assert local_times(every_minute, times) == [
        "12-29 23:59-1000",
        "12-31 00:00+1400",
        "12-31 00:01+1400",
    ]


def test_kolkata_has_no_dst_and_a_half_hour_offset() -> None:
    morning = crontab(minute=0, hour=9, tz="Asia/Kolkata")
    assert morning.due_times(at(2025, 3, 8), at(2025, 3, 10)) == [
        at(2025, 3, 8, 3, 30),
        at(2025, 3, 9, 3, 30),
    ]


# -- DST: properties over zones and years -----------------------------------------------------

ZONES = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
    "UTC",
    "Pacific/Apia",  # skipped a whole day (2011-12-30), and had DST from 2010 to 2021
]
MINUTE = timedelta(minutes=1)
PROPERTY_SETTINGS = settings(
    max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


@functools.cache
def offset_changes(zone_name: str, year: int) -> tuple[datetime, ...]:
    """The hours of ``year`` (UTC) at which the zone's offset has just changed."""
    zone, moment, changes = ZoneInfo(zone_name), at(year, 1, 1), []
    offset = moment.astimezone(zone).utcoffset()
    while moment.year == year:
        moment += timedelta(hours=1)
        if moment.astimezone(zone).utcoffset() != offset:
            changes.append(moment)
            offset = moment.astimezone(zone).utcoffset()
    return tuple(changes)


def field(low: int, high: int, shapes: list[str]) -> st.SearchStrategy[object]:
    numbers = st.integers(low, high)
    return st.one_of(
        st.just("*"),
        st.sampled_from(shapes),
        numbers,
        st.sets(numbers, min_size=1, max_size=6),
    )


crontabs = st.builds(
    dict,
    minute=field(0, 59, ["*/15", "*/7", "0,30", "15-45/10", "59"]),
    hour=st.one_of(field(0, 23, ["*/2", "9-17", "22-3"]), st.sets(st.integers(0, 3), min_size=1)),
    day_of_week=field(0, 6, ["mon-fri", "sat,sun"]),
    day_of_month=st.one_of(st.just("*"), st.just("*"), field(1, 28, ["1-7", "*/2"])),
    month_of_year=st.one_of(st.just("*"), st.just("*"), field(1, 12, ["mar,apr,oct,nov"])),
)


@st.composite
def windows(draw: st.DrawFn) -> tuple[str, datetime, datetime]:
    """A zone and a window of up to three days, often across one of its offset changes."""
    zone = draw(st.sampled_from(ZONES))
    year = draw(st.integers(2000, 2037))
    changes = offset_changes(zone, year)
    if changes and draw(st.booleans()):
        anchor = draw(st.sampled_from(changes))
    else:
        anchor = at(year, 1, 1) + timedelta(hours=draw(st.integers(0, 364 * 24)))
    after = anchor + timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))
    return zone, after, after + timedelta(minutes=draw(st.integers(0, 72 * 60)))


def fields_match(schedule_: crontab, wall: datetime) -> bool:
    return (
        wall.minute in schedule_.minute
        and wall.hour in schedule_.hour
        and wall.day in schedule_.day_of_month
        and wall.month in schedule_.month_of_year
        and wall.isoweekday() % 7 in schedule_.day_of_week
    )


def expected_due_times(schedule_: crontab, after: datetime, until: datetime) -> list[datetime]:
    """Minute by minute in real time: a minute is due when its wall time matches for the
    first time, or when the clock has just jumped over a wall time that matches."""
    zone, found = schedule_.tz, []
    moment = after.replace(second=0, microsecond=0) + MINUTE
    while moment <= until:
        wall = moment.astimezone(zone).replace(tzinfo=None)
        first_time = wall.replace(tzinfo=zone, fold=0).astimezone(UTC) == moment
        skipped = (moment - MINUTE).astimezone(zone).replace(tzinfo=None) + MINUTE
        jumped_over = []
        while skipped < wall:
            jumped_over.append(skipped)
            skipped += MINUTE
        if (first_time and fields_match(schedule_, wall)) or any(
            fields_match(schedule_, w) for w in jumped_over
        ):
            found.append(moment)
        moment += MINUTE
    return found


@PROPERTY_SETTINGS
@given(fields=crontabs, window=windows(), cut=st.floats(0, 1))
def test_crontab_due_times_are_exact_in_every_zone(
    fields: dict[str, object], window: tuple[str, datetime, datetime], cut: float
) -> None:
    zone_name, after, until = window
    schedule_ = crontab(**fields, tz=zone_name)
    zone = schedule_.tz
    times = schedule_.due_times(after, until)
    # Strictly increasing, inside the window, in UTC.
    assert all(a < b for a, b in pairwise(times))
    assert all(after < t <= until and t.tzinfo is UTC for t in times)
    # No local minute fires twice.
    walls = [t.astimezone(zone).replace(tzinfo=None) for t in times]
    assert len(set(walls)) == len(walls)
    # Each is a match in local time, or the first minute after a gap that swallowed one.
    for moment, wall in zip(times, walls, strict=True):
        clock_jumped = (moment - MINUTE).astimezone(zone).replace(tzinfo=None) + MINUTE != wall
        assert fields_match(schedule_, wall) or clock_jumped
    # And none is missing.
    assert times == expected_due_times(schedule_, after, until)
    # Deterministic and resumable: chaining due_after, or splitting the window, agrees.
    if times:
        assert schedule_.due_after(after) == times[0]
        assert [schedule_.due_after(t) for t in times[:-1]] == times[1:]
    split = after + (until - after) * cut
    assert schedule_.due_times(after, split) + schedule_.due_times(split, until) == times


@PROPERTY_SETTINGS
@given(
    window=windows(),
    run_every=st.sampled_from(
        [
            timedelta(minutes=15),
            timedelta(minutes=30),
            timedelta(hours=1),
            timedelta(hours=2),
            timedelta(days=1),
        ]
    ),
)
def test_relative_intervals_keep_to_the_local_clock(
    window: tuple[str, datetime, datetime], run_every: timedelta
) -> None:
    zone_name, after, until = window
    app = SimpleNamespace(conf=SimpleNamespace(timezone=zone_name))
    every = schedule(run_every, relative=True, app=app)
    times = every.due_times(after, until)
    assert all(a < b for a, b in pairwise(times))
    assert all(after < t <= until for t in times)
    walls = [t.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None) for t in times]
    assert len(set(walls)) == len(walls)
    assert all(w.second == 0 and w.microsecond == 0 for w in walls)
    if times:
        assert [every.due_after(t) for t in times[:-1]] == times[1:]


# -- schedules of your own ---------------------------------------------------------------------


class EveryHalfHourOnWeekdays(BaseSchedule):
    """A schedule of one's own names its due times; is_due comes from them."""

    def due_after(self, moment: datetime) -> datetime:
        candidate = moment.astimezone(UTC).replace(second=0, microsecond=0)
        candidate += timedelta(minutes=30 - candidate.minute % 30)
        while candidate.weekday() >= 5:
            candidate += timedelta(minutes=30)
        return candidate


def test_a_schedule_of_your_own_needs_only_due_after() -> None:
    clock = Clock(at(2025, 6, 6, 23, 10))  # a Friday
    own = EveryHalfHourOnWeekdays(nowfun=clock)
    assert own.is_due(at(2025, 6, 6, 23, 0)) == (False, 1200.0)
    assert own.due_times(at(2025, 6, 6, 23, 10), at(2025, 6, 9, 0, 30)) == [
        at(2025, 6, 6, 23, 30),
        at(2025, 6, 9, 0, 0),
        at(2025, 6, 9, 0, 30),
    ]
    with pytest.raises(NotImplementedError, match=r"needs due_after\(moment\)"):
        BaseSchedule().due_after(at(2025, 1, 1))


class Stuck(BaseSchedule):
    def due_after(self, moment: datetime) -> datetime:
        return at(2025, 1, 1)


def test_a_schedule_that_does_not_move_forward_is_refused() -> None:
    with pytest.raises(ValueError, match="strictly after its argument"):
        Stuck().due_times(at(2025, 1, 1), at(2025, 1, 2))


def test_maybe_make_aware_reads_naive_times_as_celery_does() -> None:
    london = crontab(tz="Europe/London")
    summer = london.maybe_make_aware(datetime(2025, 7, 1, 12))
    assert summer == at(2025, 7, 1, 12) and summer.utcoffset() == timedelta(hours=1)
    wall = london.maybe_make_aware(datetime(2025, 7, 1, 12), naive_as_utc=False)
    assert wall == at(2025, 7, 1, 11)
