"""When periodic tasks are due (``celery.schedules``): ``schedule``, ``crontab``, ``solar``.

Pure logic: imports the standard library, ``zoneinfo`` and leaf modules only (the field
syntax and the cron library behind ``_cronspec``, the DST rule in ``_localtime``, solar
events in ``_solar``, the current app from ``_context``, read duck-typed). Besides
Celery's ``is_due`` and ``remaining_estimate``, every schedule names its exact fire
instants (``due_after``, ``due_times``): the same on every host, so beat can send each one
exactly once.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from celeriac._context import get_current_app
from celeriac._cronspec import (
    FIELDS,
    CronFields,
    Cronspec,
    ParseException,
    check_days_exist,
    crontab_parser,
    expand,
)
from celeriac._localtime import (
    aware_utc,
    first_instant,
    is_imaginary,
    naive_local,
    require_aware,
)
from celeriac._solar import EVENTS as SOLAR_EVENTS
from celeriac._solar import load_astral, next_event

__all__ = [
    "ParseException",
    "crontab",
    "crontab_parser",
    "maybe_schedule",
    "schedstate",
    "schedule",
    "solar",
]

#: What ``is_due`` answers: whether to run now, and seconds until the next check.
schedstate = namedtuple("schedstate", ("is_due", "next"))

NowFun = Callable[[], datetime]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_NAIVE_EPOCH = datetime(1970, 1, 1)


def _zone(value: tzinfo | str) -> tzinfo:
    if isinstance(value, str):
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}: use an IANA name such as 'Europe/London' "
                "(install the tzdata package where the system has no zone database)"
            ) from exc
    if isinstance(value, tzinfo):
        return value
    raise TypeError(f"tz must be a zoneinfo.ZoneInfo or an IANA zone name, not {value!r}")


class BaseSchedule:
    """What every schedule shares: its clock (``nowfun`` or the app's) and its zone."""

    def __init__(
        self, nowfun: NowFun | None = None, app: Any = None, tz: tzinfo | str | None = None
    ) -> None:
        self.nowfun = nowfun
        self._app = app
        self._tz = None if tz is None else _zone(tz)

    @property
    def app(self) -> Any:
        return self._app if self._app is not None else get_current_app()

    @app.setter
    def app(self, app: Any) -> None:
        self._app = app

    @property
    def tz(self) -> tzinfo:
        """The zone the schedule evaluates in: ``tz``, else the app's ``timezone``, else UTC
        (the host's local zone when the app's ``enable_utc`` is off, as in Celery)."""
        if self._tz is not None:
            return self._tz
        app = self.app
        if app is None:
            return timezone.utc
        name = app.conf.timezone
        if name:
            return _zone(name)
        zone = getattr(app, "timezone", None)  # enable_utc off: the host's local zone
        return zone if isinstance(zone, tzinfo) else timezone.utc

    def now(self) -> datetime:
        """The current time, aware (a naive clock is read as UTC, as Celery does)."""
        if self.nowfun is not None:
            current = self.nowfun()
        else:
            app = self.app
            current = app.now() if app is not None else datetime.now(timezone.utc)
        return aware_utc(current)

    def maybe_make_aware(self, dt: datetime, naive_as_utc: bool = True) -> datetime:
        """``dt`` in the schedule's zone; a naive ``dt`` is read as UTC (or, with
        ``naive_as_utc=False``, as a wall-clock time in that zone), as in Celery."""
        if dt.tzinfo is None or dt.utcoffset() is None:
            dt = dt.replace(tzinfo=timezone.utc if naive_as_utc else self.tz)
        return dt.astimezone(self.tz)

    def due_after(self, moment: datetime) -> datetime:
        """The first due time strictly after ``moment`` (aware), in UTC."""
        raise NotImplementedError(
            f"{type(self).__name__} names no due times: a schedule class of your own needs "
            "due_after(moment) (the first due time after moment, in UTC) for beat to send it"
        )

    def due_times(
        self, after: datetime, until: datetime, limit: int | None = None
    ) -> list[datetime]:
        """Every due time in ``(after, until]``, strictly increasing, in UTC; at most
        ``limit`` of them (the earliest)."""
        require_aware(after, "after")
        require_aware(until, "until")
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be None or >= 0, not {limit!r}")
        found: list[datetime] = []
        for moment in self._iter_due(after):
            if moment > until or (limit is not None and len(found) >= limit):
                break
            found.append(moment)
        return found

    def _iter_due(self, after: datetime) -> Iterator[datetime]:
        moment = after
        while True:
            following = aware_utc(self.due_after(moment))
            if following <= moment:
                # A schedule of one's own that does not move forward would loop forever.
                raise ValueError(
                    f"{type(self).__name__}.due_after({moment.isoformat()}) returned "
                    f"{following.isoformat()}: it must return a time strictly after its argument"
                )
            moment = following
            yield moment

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """How long until the run after ``last_run_at`` (negative when it is overdue)."""
        return self.due_after(aware_utc(last_run_at)) - self.now()

    def is_due(self, last_run_at: datetime) -> schedstate:
        """``(True, seconds until the next due time)`` when a due time has passed since
        ``last_run_at``, else ``(False, seconds until it comes)``."""
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0.0)
        if remaining > 0:
            return schedstate(is_due=False, next=remaining)
        following = max(self.remaining_estimate(self.now()).total_seconds(), 0.0)
        return schedstate(is_due=True, next=following)


class schedule(BaseSchedule):
    """Run every ``run_every`` (seconds or a timedelta), as Celery's interval schedule.

    ``relative=True`` rounds each run to the interval's resolution on the local clock (an
    hourly schedule runs on the hour). Due times (``due_after``) lie on a fixed grid: whole
    multiples of ``run_every`` since 1970-01-01 00:00 UTC, or since local midnight of that
    day on the local wall clock when relative.
    """

    def __init__(
        self,
        run_every: float | timedelta,
        relative: bool = False,
        nowfun: NowFun | None = None,
        app: Any = None,
    ) -> None:
        if isinstance(run_every, bool) or not isinstance(run_every, (int, float, timedelta)):
            raise TypeError(
                f"run_every must be seconds (a number) or a datetime.timedelta, not {run_every!r}"
            )
        self.run_every = (
            run_every if isinstance(run_every, timedelta) else timedelta(seconds=run_every)
        )
        self.relative = relative
        super().__init__(nowfun=nowfun, app=app)

    @property
    def seconds(self) -> float:
        return max(self.run_every.total_seconds(), 0.0)

    @property
    def human_seconds(self) -> str:
        return _humanize(self.seconds)

    def remaining_estimate(self, last_run_at: datetime) -> timedelta:
        """How long until the run after ``last_run_at`` (negative when it is overdue)."""
        last = aware_utc(last_run_at)
        return self._end_after(last) - self.now()

    def _end_after(self, last: datetime) -> datetime:
        end = last + self.run_every
        if not self.relative:
            return end
        zone = self.tz
        local = naive_local(end, zone)
        if self.run_every >= timedelta(days=1):
            # Day intervals count calendar days on the local clock, not elapsed hours.
            local = naive_local(last, zone) + self.run_every
            local = local.replace(hour=0, minute=0, second=0, microsecond=0)
        elif self.run_every >= timedelta(hours=1):
            local = local.replace(minute=0, second=0, microsecond=0)
        elif self.run_every >= timedelta(minutes=1):
            local = local.replace(second=0, microsecond=0)
        else:
            local = local.replace(microsecond=0)
        rounded = first_instant(local, zone)
        return rounded if rounded > last else end

    def is_due(self, last_run_at: datetime) -> schedstate:
        """``(True, seconds to the next check)`` when a run is due, else
        ``(False, seconds until it is)``."""
        remaining = max(self.remaining_estimate(last_run_at).total_seconds(), 0.0)
        if remaining > 0:
            return schedstate(is_due=False, next=remaining)
        next_check = self.seconds
        if self.relative:
            realigned = self.remaining_estimate(self.now()).total_seconds()
            next_check = realigned if realigned > 0 else self.seconds
        return schedstate(is_due=True, next=next_check)

    def due_after(self, moment: datetime) -> datetime:
        require_aware(moment, "moment")
        if self.run_every <= timedelta(0):
            raise ValueError(
                f"schedule(run_every={self.run_every!r}) has no due times: "
                "give run_every a positive number of seconds or timedelta"
            )
        if not self.relative:
            steps = (moment - _EPOCH) // self.run_every + 1
            return _EPOCH + steps * self.run_every
        zone = self.tz
        step = (naive_local(moment, zone) - _NAIVE_EPOCH) // self.run_every + 1
        while True:
            candidate = first_instant(_NAIVE_EPOCH + step * self.run_every, zone)
            if candidate > moment:
                return candidate
            step += 1

    def _iter_due(self, after: datetime) -> Iterator[datetime]:
        if self.relative:
            yield from super()._iter_due(after)
            return
        moment = self.due_after(after)  # on the UTC grid: a plain sum from here
        while True:
            yield moment
            moment += self.run_every

    def __repr__(self) -> str:
        return f"<freq: {self.human_seconds}>"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, schedule):
            return self.run_every == other.run_every and self.relative == other.relative
        if isinstance(other, timedelta):
            return self.run_every == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((schedule, self.run_every, self.relative))

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.run_every, self.relative, self.nowfun)


def _humanize(seconds: float) -> str:
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0)):
        if seconds >= size:
            amount = seconds / size
            return f"{amount:.2f} {unit}{'' if amount == 1 else 's'}"
    return "now"


class crontab(BaseSchedule):
    """Run at the wall-clock minutes that match every field, as Celery's crontab.

    Fields take Celery's forms: an int, a string ('*/15', '1-5', 'mon-fri', '1,15') or a
    collection of ints. ``day_of_week`` counts from Sunday = 0; a day must match both
    ``day_of_month`` and ``day_of_week`` (and ``month_of_year``), as in Celery. Times are
    local to ``tz`` (a ``ZoneInfo`` or an IANA name), else the app's ``timezone``, else
    UTC. A time the clock skips fires once, at the first minute after the gap; a time the
    clock shows twice fires once, at its first occurrence.
    """

    def __init__(
        self,
        minute: Cronspec = "*",
        hour: Cronspec = "*",
        day_of_week: Cronspec = "*",
        day_of_month: Cronspec = "*",
        month_of_year: Cronspec = "*",
        tz: tzinfo | str | None = None,
        nowfun: NowFun | None = None,
        app: Any = None,
    ) -> None:
        self._orig_minute = minute
        self._orig_hour = hour
        self._orig_day_of_week = day_of_week
        self._orig_day_of_month = day_of_month
        self._orig_month_of_year = month_of_year
        self.minute = expand(FIELDS["minute"], minute)
        self.hour = expand(FIELDS["hour"], hour)
        self.day_of_week = expand(FIELDS["day_of_week"], day_of_week)
        self.day_of_month = expand(FIELDS["day_of_month"], day_of_month)
        self.month_of_year = expand(FIELDS["month_of_year"], month_of_year)
        check_days_exist(
            self.day_of_month,
            self.month_of_year,
            f"day_of_month={day_of_month!r} month_of_year={month_of_year!r}",
        )
        self._fields = CronFields(
            self.minute, self.hour, self.day_of_week, self.day_of_month, self.month_of_year
        )
        super().__init__(nowfun=nowfun, app=app, tz=tz)

    @classmethod
    def from_string(cls, crontab: str, **kwargs: Any) -> crontab:
        """A crontab from a five-field cron line: 'minute hour day month weekday'."""
        parts = crontab.split()
        if len(parts) != 5:
            raise ValueError(
                f"crontab.from_string({crontab!r}): a cron line has five fields "
                "'minute hour day_of_month month_of_year day_of_week', e.g. '0 9 * * mon-fri'"
            )
        minute, hour, day_of_month, month_of_year, day_of_week = parts
        return cls(minute, hour, day_of_week, day_of_month, month_of_year, **kwargs)

    def matches(self, moment: datetime) -> bool:
        """True when the instant ``moment`` is a minute the fields name, in local time."""
        return self._fields.matches(naive_local(moment, self.tz))

    def due_after(self, moment: datetime) -> datetime:
        require_aware(moment, "moment")
        return next(iter(self._iter_due(moment)))

    def _iter_due(self, after: datetime) -> Iterator[datetime]:
        zone = self.tz
        latest = aware_utc(after)
        start = naive_local(latest, zone)
        while True:
            for local in self._fields.walk(start):
                # Wall-clock order can repeat an instant (times in a DST gap all move to its
                # end) or fall behind ``after`` (the first pass of a repeated hour): skip those.
                instant = first_instant(local, zone)
                if instant > latest:
                    latest = instant
                    yield instant
                elif is_imaginary(local, zone):
                    # The rest of the gap moves to the same instant: go on from its end.
                    start = naive_local(latest, zone)
                    break
            else:
                raise ValueError(f"{self!r} has no due time in the next 50 years")

    def _key(self) -> tuple[Any, ...]:
        return (self._fields, self._tz)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, crontab):
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash((crontab, *self._key()))

    def __repr__(self) -> str:
        fields = " ".join(
            str(value)
            for value in (
                self._orig_minute,
                self._orig_hour,
                self._orig_day_of_month,
                self._orig_month_of_year,
                self._orig_day_of_week,
            )
        )
        zone = "" if self._tz is None else f" {self._tz}"
        return f"<crontab: {fields} (m/h/dM/MY/d){zone}>"

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (
            self._orig_minute,
            self._orig_hour,
            self._orig_day_of_week,
            self._orig_day_of_month,
            self._orig_month_of_year,
            self._tz,
        )


class solar(BaseSchedule):
    """Due at a solar event (``sunrise``, ``sunset``, ``solar_noon``, ``dawn_civil``,
    ``dusk_nautical``, ...) seen from latitude ``lat`` and longitude ``lon``, as Celery's
    ``solar``; computed with ``astral`` (``pip install 'celeriac[solar]'``), to the second.
    On days the event does not happen there (polar day or night) nothing is due."""

    def __init__(self, event: str, lat: float, lon: float, **kwargs: Any) -> None:
        load_astral()  # a missing library fails here, where the schedule is written
        if event not in SOLAR_EVENTS:
            raise ValueError(
                f"unknown solar event {event!r}: use one of {', '.join(sorted(SOLAR_EVENTS))}"
            )
        if not -90 <= lat <= 90:
            raise ValueError(f"latitude {lat!r} is out of range: it must be -90 to 90")
        if not -180 <= lon <= 180:
            raise ValueError(f"longitude {lon!r} is out of range: it must be -180 to 180")
        super().__init__(**kwargs)
        self.event, self.lat, self.lon = event, lat, lon

    def due_after(self, moment: datetime) -> datetime:
        found = next_event(self.event, self.lat, self.lon, aware_utc(moment))
        if found is None:
            raise ValueError(
                f"{self.event} does not happen within a year at latitude {self.lat}, "
                f"longitude {self.lon}: choose another event for this place"
            )
        return found

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.event, self.lat, self.lon)

    def __repr__(self) -> str:
        return f"<solar: {self.event} at latitude {self.lat}, longitude: {self.lon}>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, solar):
            return NotImplemented
        return (self.event, self.lat, self.lon) == (other.event, other.lat, other.lon)

    def __hash__(self) -> int:
        return hash((self.event, self.lat, self.lon))


def maybe_schedule(
    value: float | timedelta | BaseSchedule | None, relative: bool = False, app: Any = None
) -> BaseSchedule | None:
    """A schedule from seconds, a timedelta, or a schedule (returned as is, bound to
    ``app`` when one is given)."""
    if value is None:
        return None
    if isinstance(value, BaseSchedule):
        if app is not None:
            value.app = app
        return value
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        return schedule(value, relative, app=app)
    raise TypeError(
        f"a schedule must be seconds, a timedelta, schedule(...) or crontab(...), not {value!r}"
    )
