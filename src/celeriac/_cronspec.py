"""Celery's crontab field syntax, read into sets and iterated with the cronsim library.

Leaf module (stdlib and ``cronsim`` only). ``crontab_parser`` reads one field ('*/15',
'1-5', 'mon-fri', '1,15'); ``expand`` checks a field of any accepted type; ``CronFields``
walks the matching wall-clock minutes in order, with no zone (``_localtime`` maps them).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from cronsim import CronSim

__all__ = ["FIELDS", "CronFields", "ParseException", "crontab_parser", "expand"]

Cronspec = int | str | Iterable[int]


class ParseException(ValueError):
    """A crontab field could not be read (Celery's name; also a ``ValueError``)."""


@dataclass(frozen=True)
class Field:
    """One crontab field: its values run from ``low`` for ``size`` values."""

    name: str
    size: int
    low: int
    example: str

    @property
    def high(self) -> int:
        return self.low + self.size - 1


FIELDS = {
    field.name: field
    for field in (
        Field("minute", 60, 0, "minute='*/15', minute='0,30' or minute=[0, 30]"),
        Field("hour", 24, 0, "hour='*/3', hour='9-17' or hour=[0, 12]"),
        Field("day_of_week", 7, 0, "day_of_week='mon-fri' or day_of_week=0 (Sunday is 0)"),
        Field("day_of_month", 31, 1, "day_of_month='1,15' or day_of_month='1-7'"),
        Field("month_of_year", 12, 1, "month_of_year='*/3' or month_of_year='jan-mar'"),
    )
}

_WEEKDAYS = {name: n for n, name in enumerate(("sun", "mon", "tue", "wed", "thu", "fri", "sat"))}
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
_PART = re.compile(r"^(?:(?P<star>\*)|(?P<first>\w+)(?:-(?P<last>\w+))?)(?:/(?P<step>\w*))?$")
# The longest February, as Celery checks it: a day that no chosen month has is refused.
_DAYS_IN_MONTH = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31}
_DAYS_IN_MONTH |= {11: 30, 12: 31}


class crontab_parser:
    """Read one crontab field into the set of values it names (Celery's parser).

    ``crontab_parser(60).parse('*/15')`` is ``{0, 15, 30, 45}``; ``max_`` values start at
    ``min_`` (``crontab_parser(31, 1)`` reads days of the month). A part is ``*``, a value,
    or a range ``a-b`` (wrapping past the end when ``b < a``), each optionally ``/step``;
    parts are joined with commas. Day names (``mon``) are read in a 7-value field starting
    at 0, month names (``jan``) in a 12-value field starting at 1.
    """

    ParseException = ParseException

    def __init__(self, max_: int = 60, min_: int = 0) -> None:
        self.max_ = max_
        self.min_ = min_

    def parse(self, spec: str) -> set[int]:
        values: set[int] = set()
        for part in spec.split(","):
            values.update(self._parse_part(part.strip(), spec))
        return values

    def _parse_part(self, part: str, spec: str) -> list[int]:
        if not part:
            raise ParseException(f"{spec!r} has an empty part: separate values with one comma")
        match = _PART.match(part)
        if match is None:
            raise ParseException(
                f"{part!r} is not a crontab part: use '*', a value, a range 'a-b', "
                "each optionally followed by '/step'"
            )
        if match["star"]:
            values = list(range(self.min_, self.min_ + self.max_))
        elif match["last"] is not None:
            values = self._range(self._number(match["first"]), self._number(match["last"]))
        elif match["step"] is not None:
            raise ParseException(
                f"{part!r}: a step needs '*' or a range before it, "
                f"e.g. '{match['first']}-{self.min_ + self.max_ - 1}/{match['step']}'"
            )
        else:
            values = [self._number(match["first"])]
        if match["step"] is None:
            return values
        return values[:: self._step(match["step"], part)]

    def _range(self, first: int, last: int) -> list[int]:
        if last < first:  # wraps past the end, as Celery's '22-2' (hours 22 to 2)
            return list(range(first, self.min_ + self.max_)) + list(range(self.min_, last + 1))
        return list(range(first, last + 1))

    @staticmethod
    def _step(text: str, part: str) -> int:
        if not text:
            raise ParseException(f"{part!r} has an empty step: write e.g. '*/5'")
        if not text.isdigit() or int(text) == 0:
            raise ParseException(f"{part!r}: the step must be a whole number above 0")
        return int(text)

    def _number(self, text: str) -> int:
        value = int(text) if text.isdigit() else self._name(text)
        if not self.min_ <= value < self.min_ + self.max_:
            raise ValueError(
                f"{value} is out of range: this field takes {self.min_}-{self.min_ + self.max_ - 1}"
            )
        return value

    def _name(self, text: str) -> int:
        names = {}
        if (self.max_, self.min_) == (7, 0):
            names = _WEEKDAYS
        elif (self.max_, self.min_) == (12, 1):
            names = _MONTHS
        value = names.get(text[:3].lower()) if text.isalpha() else None
        if value is None:
            hint = f" or a name such as {next(iter(names))!r}" if names else ""
            raise ParseException(f"{text!r} is not a value here: use a whole number{hint}")
        return value


def expand(field: Field, spec: Cronspec) -> frozenset[int]:
    """The values one crontab field names, from an int, a string, or ints in a collection."""
    try:
        values = _read(field, spec)
        for value in values:
            if not field.low <= value <= field.high:
                raise ValueError(
                    f"{value} is out of range: {field.name} takes {field.low}-{field.high}"
                )
        if not values:
            raise ValueError("it names no value")
    except (ValueError, TypeError) as exc:
        kind = type(exc) if isinstance(exc, (ParseException, TypeError)) else ValueError
        raise kind(f"crontab {field.name}={spec!r}: {exc}; for example {field.example}") from None
    return frozenset(values)


def _read(field: Field, spec: Cronspec) -> set[int]:
    if isinstance(spec, bool):
        raise TypeError("a bool is not a value")
    if isinstance(spec, int):
        return {spec}
    if isinstance(spec, str):
        return crontab_parser(field.size, field.low).parse(spec)
    if isinstance(spec, Iterable):
        values = set(spec)
        wrong = [v for v in values if isinstance(v, bool) or not isinstance(v, int)]
        if wrong:
            raise TypeError(f"{wrong[0]!r} is not a whole number")
        return values
    raise TypeError("give an int, a crontab string, or a collection of ints")


def check_days_exist(days: frozenset[int], months: frozenset[int], text: str) -> None:
    """Refuse a day of the month that none of the months has (30 February)."""
    if not any(day <= _DAYS_IN_MONTH[month] for month in months for day in days):
        raise ValueError(
            f"crontab {text}: that day of the month never occurs in those months; "
            "pick days every chosen month has (e.g. day_of_month='1-28')"
        )


def _cron_list(values: frozenset[int], field: Field) -> str:
    return "*" if len(values) == field.size else ",".join(str(v) for v in sorted(values))


@dataclass(frozen=True)
class CronFields:
    """The five expanded fields; ``walk`` yields matching wall-clock minutes in order."""

    minute: frozenset[int]
    hour: frozenset[int]
    day_of_week: frozenset[int]
    day_of_month: frozenset[int]
    month_of_year: frozenset[int]

    def _expression(self) -> tuple[str, bool]:
        """A cron expression for cronsim, and whether the weekday is left for us to check.

        Celery requires the day of the month AND the weekday to match; cron (and cronsim)
        accepts either when both are restricted, so then cronsim gets '*' for the weekday.
        """
        days = _cron_list(self.day_of_month, FIELDS["day_of_month"])
        weekdays = _cron_list(self.day_of_week, FIELDS["day_of_week"])
        check_weekday = days != "*" and weekdays != "*"
        minutes = _cron_list(self.minute, FIELDS["minute"])
        hours = _cron_list(self.hour, FIELDS["hour"])
        months = _cron_list(self.month_of_year, FIELDS["month_of_year"])
        weekday_part = "*" if check_weekday else weekdays
        return f"{minutes} {hours} {days} {months} {weekday_part}", check_weekday

    def matches(self, local: datetime) -> bool:
        """True when the naive wall-clock minute ``local`` is one the fields name."""
        return (
            local.second == 0
            and local.microsecond == 0
            and local.minute in self.minute
            and local.hour in self.hour
            and local.day in self.day_of_month
            and local.month in self.month_of_year
            and local.isoweekday() % 7 in self.day_of_week
        )

    def walk(self, after: datetime) -> Iterator[datetime]:
        """Matching naive wall-clock minutes strictly after the naive ``after``."""
        expression, check_weekday = self._expression()
        start = after
        while True:
            restarted = False
            for local in CronSim(expression, start):
                if check_weekday and local.isoweekday() % 7 not in self.day_of_week:
                    # Skip the rest of a day whose weekday is not wanted.
                    start = datetime.combine(local.date() + timedelta(days=1), time())
                    start -= timedelta(seconds=1)
                    restarted = True
                    break
                yield local
            if not restarted:
                return
