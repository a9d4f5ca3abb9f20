"""``ScheduleEntry``: one periodic task of the schedule, as Celery's, plus its misfire policy.

Runtime layer (beat): imports ``celeriac.schedules``, ``celeriac.exceptions`` and the
config hints; never an engine. ``entries_from_config`` turns ``beat_schedule`` into entries
and names every mistake with its fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any

from celeriac.config.hints import did_you_mean
from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import BaseSchedule, crontab, maybe_schedule

CATCHUP = ("latest", "all", "none")
#: The keys a ``beat_schedule`` entry may have: Celery's, then celeriac's.
FIELDS = (
    "task", "schedule", "args", "kwargs", "options", "relative",
    "catchup", "max_catchup", "misfire_grace_time", "enabled",
)  # fmt: skip


class ScheduleEntry:
    """A periodic task: which task, when (``schedule``), with what arguments and options.

    ``last_run_at`` is the latest due time beat handled (sent or skipped), kept in the
    broker; ``total_run_count`` counts this process's sends. ``catchup``,
    ``max_catchup`` and ``misfire_grace_time`` default to the ``beat_*`` settings (None).
    """

    editable_fields = ("task", "schedule", "args", "kwargs", "options", "relative")

    def __init__(
        self,
        name: str | None = None,
        task: str | None = None,
        last_run_at: datetime | None = None,
        total_run_count: int | None = None,
        schedule: Any = None,
        args: Any = (),
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        relative: bool = False,
        app: Any = None,
        *,
        catchup: str | None = None,
        max_catchup: int | None = None,
        misfire_grace_time: float | None = None,
        enabled: bool = True,
    ) -> None:
        where = f"beat_schedule entry {name!r}"
        if not isinstance(name, str) or not name:
            raise ImproperlyConfigured(f"a periodic task needs a name (a string), not {name!r}")
        if not isinstance(task, str) or not task:
            raise ImproperlyConfigured(
                f"{where}: 'task' must be a task name such as 'proj.tasks.report', not {task!r}"
            )
        try:
            parsed = maybe_schedule(schedule, relative, app=app)
        except TypeError as exc:
            raise ImproperlyConfigured(f"{where}: {exc}") from None
        if parsed is None:
            raise ImproperlyConfigured(
                f"{where}: 'schedule' is missing: give seconds, a timedelta, schedule(...) "
                f"or crontab(...)"
            )
        if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
            raise ImproperlyConfigured(f"{where}: 'args' must be a list or tuple, not {args!r}")
        for field, value in (("kwargs", kwargs), ("options", options)):
            if value is not None and not isinstance(value, Mapping):
                raise ImproperlyConfigured(f"{where}: {field!r} must be a dict, not {value!r}")
        if catchup is not None and catchup not in CATCHUP:
            raise ImproperlyConfigured(
                f"{where}: 'catchup' must be one of {', '.join(CATCHUP)}, not {catchup!r}"
            )
        if max_catchup is not None and (not isinstance(max_catchup, int) or max_catchup < 1):
            raise ImproperlyConfigured(
                f"{where}: 'max_catchup' must be a positive integer, not {max_catchup!r}"
            )
        if misfire_grace_time is not None and (
            isinstance(misfire_grace_time, bool)
            or not isinstance(misfire_grace_time, (int, float))
            or misfire_grace_time < 0
        ):
            raise ImproperlyConfigured(
                f"{where}: 'misfire_grace_time' must be seconds (>= 0) or None, "
                f"not {misfire_grace_time!r}"
            )
        self.name = name
        self.task = task
        self.schedule: BaseSchedule = parsed
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.options = dict(options or {})
        self.relative = relative
        self.app = app
        self.last_run_at = last_run_at
        self.total_run_count = total_run_count or 0
        self.catchup = catchup
        self.max_catchup = max_catchup
        self.misfire_grace_time = misfire_grace_time
        self.enabled = bool(enabled)

    def is_due(self) -> Any:
        """Celery's ``(is_due, next)`` for ``last_run_at`` (beat itself plans with the
        schedule's exact due times)."""
        last = self.last_run_at or self.schedule.now()
        return self.schedule.is_due(last)

    def update(self, other: ScheduleEntry) -> None:
        """Take the editable fields of ``other`` (a changed definition of this entry)."""
        for field in self.editable_fields:
            setattr(self, field, getattr(other, field))
        self.catchup, self.max_catchup = other.catchup, other.max_catchup
        self.misfire_grace_time, self.enabled = other.misfire_grace_time, other.enabled

    def policy(self, conf: Any) -> tuple[str, int, float | None]:
        """``(catchup, max_catchup, misfire_grace_time)``: the entry's, else the settings'
        (``beat_cron_starting_deadline`` is a crontab entry's default grace, as in Celery)."""
        grace = self.misfire_grace_time
        if grace is None and isinstance(self.schedule, crontab):
            grace = conf.beat_cron_starting_deadline
        if grace is None:
            grace = conf.beat_misfire_grace_time
        return (
            self.catchup or conf.beat_catchup,
            self.max_catchup or conf.beat_max_catchup,
            None if grace is None else float(grace),
        )

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        return iter(vars(self).items())

    def __repr__(self) -> str:
        words = [*(repr(a) for a in self.args), *(f"{k}={v!r}" for k, v in self.kwargs.items())]
        call = ", ".join(words)
        return f"<ScheduleEntry: {self.name} {self.task}({call}) {self.schedule!r}>"


def entries_from_config(schedule: Mapping[str, Any], app: Any) -> dict[str, ScheduleEntry]:
    """``beat_schedule`` (name -> dict) as entries; an unknown key is refused, with the
    closest known key."""
    if not isinstance(schedule, Mapping):
        raise ImproperlyConfigured(
            f"beat_schedule must be a dict of name -> entry, not {type(schedule).__name__}"
        )
    entries: dict[str, ScheduleEntry] = {}
    for name, fields in schedule.items():
        if isinstance(fields, ScheduleEntry):
            entries[name] = fields
            continue
        if not isinstance(fields, Mapping):
            raise ImproperlyConfigured(
                f"beat_schedule entry {name!r} must be a dict with 'task' and 'schedule', "
                f"not {fields!r}"
            )
        for key in fields:
            if key not in FIELDS:
                raise ImproperlyConfigured(
                    f"beat_schedule entry {name!r} has an unknown key {key!r}"
                    f"{did_you_mean(str(key), FIELDS)} (the keys: {', '.join(FIELDS)})"
                )
        entries[name] = ScheduleEntry(name=name, app=app, **dict(fields))
    return entries
