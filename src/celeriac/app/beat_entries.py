"""``app.beat``: change the periodic tasks of running beats, with no restart.

App core: imports ``celeriac.schedules``, the broker seam and the stdlib; never the beat
runtime. Each change (add, update, remove, enable, disable) is one JSON record on the
broker's stream topic ``celeriac.beat.changes``; every beat follows the topic and the
leader applies a change within a second. ``entries()`` replays the topic. Schedules travel
as ``{"every": seconds, "relative": bool}`` or ``{"crontab": "m h dom mon dow", "tz": name}``.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from celeriac.brokers.base import Broker, Topic
from celeriac.exceptions import BrokerError
from celeriac.schedules import BaseSchedule, crontab, schedule

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

#: Changes kept: Redis keeps about this many records; RabbitMQ reads ``keep`` as KiB.
CHANGES = Topic("celeriac.beat.changes", kind="stream", keep=10_000)
READ_TIMEOUT = 10.0
#: The fields a live entry may set (``schedule`` as given to ``add``/``update``).
FIELDS = ("task", "schedule", "args", "kwargs", "options", "relative",
          "catchup", "max_catchup", "misfire_grace_time", "enabled")  # fmt: skip


def encode_schedule(value: Any) -> dict[str, Any]:
    """A schedule as JSON: seconds, a timedelta, ``schedule(...)`` or ``crontab(...)``."""
    if isinstance(value, (int, float, timedelta)) and not isinstance(value, bool):
        value = schedule(value)
    if isinstance(value, schedule):
        return {"every": value.seconds, "relative": value.relative}
    if isinstance(value, crontab):
        names = ("minute", "hour", "day_of_month", "month_of_year", "day_of_week")
        line = " ".join(_cron_field(getattr(value, f"_orig_{n}"), getattr(value, n)) for n in names)
        zone = value._tz  # the crontab's own zone; None follows the app's timezone
        return {"crontab": line, "tz": None if zone is None else str(zone)}
    raise TypeError(
        f"a live entry's schedule is seconds, a timedelta, schedule(...) or crontab(...), "
        f"not {value!r}"
    )


def _cron_field(given: Any, expanded: set[int]) -> str:
    """A crontab field as it was written when that reads back the same, else its values."""
    if isinstance(given, str) and given.strip() and " " not in given.strip():
        return given.strip()
    if isinstance(given, int) and not isinstance(given, bool):
        return str(given)
    return ",".join(str(v) for v in sorted(expanded))


def decode_schedule(spec: Mapping[str, Any]) -> BaseSchedule:
    if "every" in spec:
        return schedule(float(spec["every"]), bool(spec.get("relative", False)))
    return crontab.from_string(str(spec["crontab"]), tz=spec.get("tz"))


def apply_change(entries: dict[str, dict[str, Any]], payload: bytes) -> bool:
    """Fold one change record into ``entries`` (name -> fields); False for anything else
    (a reader's end-of-history marker), which is passed over."""
    try:
        change = json.loads(payload)
        op, name = change["op"], change["name"]
    except (ValueError, KeyError, TypeError):
        return False
    if op == "remove":
        entries.pop(name, None)
    elif op == "set":
        entries.setdefault(name, {}).update(change.get("fields", {}))
    elif op == "add":
        entries[name] = dict(change.get("fields", {}))
    else:
        return False
    return True


async def _read(broker: Broker) -> dict[str, dict[str, Any]]:
    entries: dict[str, dict[str, Any]] = {}
    marker = json.dumps({"marker": uuid.uuid4().hex}).encode()
    try:
        subscription = await broker.subscribe(CHANGES, history=True)
        try:
            await broker.publish_topic_async(CHANGES, marker)
            while (payload := await subscription.get(READ_TIMEOUT)) != marker:
                if payload is None:
                    raise BrokerError(f"{CHANGES.name} could not be read in {READ_TIMEOUT:g} s")
                apply_change(entries, payload)
        finally:
            await subscription.close()
    finally:
        await broker.close_async()
    return entries


def read_entries(broker: Broker) -> dict[str, dict[str, Any]]:
    """The live entries as the changes so far make them: name -> fields (JSON form)."""
    return asyncio.run(_read(broker))


def merged_entries(
    code: Mapping[str, Mapping[str, Any]], live: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    """``beat_schedule`` and the live entries as one schedule (JSON form): for a name in
    both, the fields the code sets win and the live ones fill in the rest."""
    merged = {name: dict(fields) for name, fields in live.items()}
    for name, fields in code.items():
        coded = dict(fields)
        if "schedule" in coded:
            coded["schedule"] = encode_schedule(coded["schedule"])
        merged[name] = {**merged.get(name, {}), **coded}
    return merged


class BeatEntries:
    """``app.beat``: add, change and remove periodic tasks while beats run."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def _publish(self, op: str, name: str, fields: Mapping[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a periodic task needs a name (a string), not {name!r}")
        record: dict[str, Any] = {"op": op, "name": name}
        if fields is not None:
            record["fields"] = self._checked(name, fields)
        try:
            payload = json.dumps(record).encode()
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"periodic task {name!r}: args, kwargs and options must be JSON data ({exc})"
            ) from None
        self.app.broker.publish_topic(CHANGES, payload)

    @staticmethod
    def _checked(name: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise TypeError(
                f"periodic task {name!r}: unknown field(s) {', '.join(unknown)}; the fields "
                f"are {', '.join(FIELDS)}"
            )
        checked = dict(fields)
        if "schedule" in checked:
            checked["schedule"] = encode_schedule(checked["schedule"])
        if "args" in checked:
            checked["args"] = list(checked["args"])
        return checked

    def add(self, name: str, task: str, schedule: Any, **fields: Any) -> None:
        """Add (or replace) the periodic task ``name``: ``add('report', 'proj.report',
        crontab(hour=3, minute=0), args=[...], options={'queue': 'reports'})``."""
        if not isinstance(task, str) or not task:
            raise TypeError(f"periodic task {name!r}: task must be a task name, not {task!r}")
        self._publish("add", name, {"task": task, "schedule": schedule, **fields})

    def update(self, name: str, **fields: Any) -> None:
        """Change some fields of ``name``. For an entry of ``beat_schedule``, the fields
        set there win (change them in the code); the others (``enabled``, ...) can change."""
        coded = sorted(set(fields) & set(self.app.conf.beat_schedule.get(name, {})))
        if coded:
            raise ValueError(
                f"periodic task {name!r} sets {', '.join(coded)} in beat_schedule, which wins "
                f"over live changes: change it there, or add a live entry of another name"
            )
        self._publish("set", name, fields)

    def remove(self, name: str) -> None:
        """Remove a live entry (an entry of ``beat_schedule`` comes back with it: disable it)."""
        self._publish("remove", name)

    def enable(self, name: str) -> None:
        self._publish("set", name, {"enabled": True})

    def disable(self, name: str) -> None:
        self._publish("set", name, {"enabled": False})

    def entries(self) -> dict[str, dict[str, Any]]:
        """Every entry: the live ones merged with ``beat_schedule``, whose fields win
        (name -> fields, schedules in their JSON form)."""
        return merged_entries(self.app.conf.beat_schedule, read_entries(self.app.broker))

    def run_now(self, name: str) -> str:
        """Send one run of ``name`` now (outside its schedule); its task id."""
        fields = self.entries().get(name)
        if fields is None:
            raise KeyError(f"no periodic task named {name!r}")
        result = self.app.send_task(
            fields["task"], fields.get("args") or (), fields.get("kwargs") or {},
            **(fields.get("options") or {}),
        )  # fmt: skip
        return str(result.id)
