"""Schedules: Celery's crontab field syntax and errors, is_due and remaining_estimate on a
fake clock, and exact due times across DST in several zones (named cases and properties)."""

from __future__ import annotations

import pickle
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from celeriac import Celery
from celeriac.schedules import (
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
