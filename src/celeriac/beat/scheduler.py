"""``Scheduler``: the beat loop's one step (``tick``), sending each due run exactly once.

Runtime layer (beat): reaches the broker only through the seam (``hold_lease``,
``reserve``/``release``, the channel for state) and sends through ``app.send_task``;
never imports an engine or the worker. Each tick: renew the lease (``leadership``); a
scheduler that does not lead sends nothing. A new leader reads the state (``state``), then
for every enabled entry the due times since its last handled one are planned by its
misfire policy (``misfire``) and sent. Every send carries a task id derived from (entry,
due time), and on a broker with key-value state (Redis) the run's key is reserved first
(``Broker.reserve``, as ``apply_async(idempotency_key=...)`` does), by this leader's name
and token, so a run is sent once whatever the leaders do; a leader acts only while its
lease is certainly valid (``Leadership.valid``).
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from celeriac._localtime import aware_utc
from celeriac.app.beat_entries import decode_schedule
from celeriac.beat import state
from celeriac.beat.entry import ScheduleEntry, entries_from_config
from celeriac.beat.leadership import Leadership
from celeriac.beat.live import LiveChanges
from celeriac.beat.misfire import plan
from celeriac.exceptions import BrokerError, ImproperlyConfigured

logger = logging.getLogger("celeriac.beat")
_RUN_IDS = uuid.UUID("6f0c1b3e-58a4-4d1f-9a57-2b1e0c7d9a11")  # the namespace of run ids
STANDBY_CHECKS = 10  # a standby tries the lease this many times per ttl
PENDING_LEASES = 3  # a previous leader's unsent runs are sent again this many leases late
LIVE_DELAY = 1.0  # seconds within which a live change (``app.beat``) takes effect


def run_key(name: str, due: datetime) -> str:
    """The idempotency key of one run: the entry and its due time (UTC)."""
    return f"celeriac.beat:{name}:{due.isoformat()}"


def run_id(name: str, due: datetime) -> str:
    """The task id of one run, the same on every host: a UUID5 of its key."""
    return str(uuid.uuid5(_RUN_IDS, run_key(name, due)))


class Scheduler:
    """Celery's ``beat.Scheduler`` with its state in the broker and a lease for leading.

    ``schedule`` (a ``beat_schedule``-style dict) adds entries beside the app's
    ``beat_schedule``. ``schedule_filename`` is Celery's state file: accepted, and
    logged as unused, since the state lives in the broker.
    """

    Entry = ScheduleEntry

    def __init__(
        self,
        app: Any,
        schedule: Mapping[str, Any] | None = None,
        max_interval: float | None = None,
        lazy: bool = False,
        *,
        schedule_filename: str | None = None,
        lease_timeout: float | None = None,
        holder: str | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        live_changes: bool = True,
    ) -> None:
        self.app = app
        conf = app.conf
        self.max_interval = float(max_interval or conf.beat_max_loop_interval)
        ttl = float(lease_timeout or conf.beat_lease_timeout)
        self.leadership = Leadership(app.broker, ttl, holder, monotonic)
        self.data: dict[str, ScheduleEntry] = {}
        self.last: dict[str, datetime] = {}  # the latest due time handled, per entry
        self._next: dict[str, datetime] = {}  # the next due time after the last look, per entry
        self._extra = dict(schedule or {})
        self._code: dict[str, Any] = {}  # beat_schedule and ``schedule``: the code's entries
        self.live = LiveChanges(app.broker) if live_changes else None
        self._live_version = 0
        self._pending: state.Pending = {}  # runs a previous leader may not have sent
        self._since: datetime | None = None  # the previous look while leading
        self._records = 0
        if schedule_filename:
            logger.info(
                "beat: schedule file %r is not used: the state is kept in the broker",
                schedule_filename,
            )
        if not lazy:
            self.setup_schedule()

    # -- the schedule -----------------------------------------------------------------------
    @property
    def schedule(self) -> dict[str, ScheduleEntry]:
        return self.data

    @property
    def holder(self) -> str:
        return self.leadership.holder

    def setup_schedule(self) -> None:
        """Finalize the app (``on_after_configure``/``on_after_finalize`` receivers may add
        periodic tasks), then read ``beat_schedule``."""
        self.app.finalize()
        self._code = {**self.app.conf.beat_schedule, **self._extra}
        self.merge_inplace(self._code)

    def merge_inplace(self, schedule: Mapping[str, Any]) -> None:
        """Make the entries those of ``schedule``: new ones added, changed ones updated
        (keeping their state), missing ones removed."""
        entries = entries_from_config(schedule, self.app)
        self._next.clear()
        for name in list(self.data):
            if name not in entries:
                del self.data[name]
        for name, entry in entries.items():
            if name in self.data:
                self.data[name].update(entry)
            else:
                self.data[name] = entry

    def add(self, **fields: Any) -> ScheduleEntry:
        """Add (or replace) one entry: ``add(name=..., task=..., schedule=...)``."""
        entry = self.Entry(app=self.app, **fields)
        self._next.pop(entry.name, None)
        self.data[entry.name] = entry
        return entry

    def now(self) -> datetime:
        return aware_utc(self.app.now())  # the app's clock, in UTC for the records

    # -- the loop ---------------------------------------------------------------------------
    def tick(self) -> float:
        """One step: lead (or stand by), send what is due; the seconds to wait until the
        next step.

        The due runs are recorded in the broker's state before they are sent, and the lease
        is confirmed with the broker between the two: a leader that takes over later reads
        the record and does not send them again, and one that paused before recording finds
        its lease gone and sends nothing.
        """
        term = self.leadership.token
        if self.live is not None and not self.live.started:
            self.live.start()
        if not self.leadership.renew():
            self._since = None
            return min(self.max_interval, self.leadership.ttl / STANDBY_CHECKS)
        now = self.now()
        if self.leadership.token != term:
            self._take_over(now)
        self._apply_live()
        handled: dict[str, datetime] = {}
        due: list[tuple[ScheduleEntry, datetime]] = []
        for entry in list(self.data.values()):
            if entry.enabled:
                due.extend((entry, when) for when in self._plan(entry, now, handled))
        sending: dict[str, list[datetime]] = {}
        for entry, when in due:
            sending.setdefault(entry.name, []).append(when)
        if handled:
            if not self.leadership.valid() or not self._save(handled, sending=sending):
                for name in handled:  # nothing recorded, so nothing sent: the next tick retries
                    self._next.pop(name, None)
                return self._wait(now)
            self.last.update(handled)
        if self._pending:
            due = [*self._taken_over_runs(now), *due]
        if due and self.leadership.confirm():
            self._send(due)
        self._since = now
        return self._wait(now)

    def _apply_live(self) -> None:
        """Rebuild the entries when a live change arrived: the live entries, with the
        fields the code sets winning for names in both; an entry that cannot work is
        left out and logged."""
        if self.live is None:
            return
        version, live = self.live.snapshot()
        if version == self._live_version:
            return
        self._live_version = version
        schedule = dict(self._code)
        for name, fields in live.items():
            decoded = dict(fields)
            try:
                if "schedule" in decoded:
                    decoded["schedule"] = decode_schedule(decoded["schedule"])
                merged = {**decoded, **self._code.get(name, {})}
                entries_from_config({name: merged}, self.app)
            except (ImproperlyConfigured, ValueError, TypeError, KeyError) as exc:
                logger.error("beat: live entry %r left out: %s", name, exc)
                continue
            schedule[name] = merged
        self.merge_inplace(schedule)
        logger.info("beat: schedule changed: %d entries", len(self.data))

    def _take_over(self, now: datetime) -> None:
        if self.live is not None and not self.live.ready.wait(2.0):
            logger.warning("beat: live changes not read yet; they apply once they arrive")
        try:
            stored, pending = state.load(self.app.broker)
        except BrokerError as exc:
            logger.error("beat: could not read the state from the broker: %s", exc)
            stored, pending = {}, {}
        # The previous leader's last runs may not have gone out (it stopped between its
        # record and its send). With run keys to reserve, sending them again is safe: a
        # run that did go out keeps its key. Without them, they are left as recorded.
        self._pending = pending if self.app.broker.supports_key_value else {}
        self.last = stored
        self._next.clear()
        for name in self.data:
            self.last.setdefault(name, now)  # a new entry first runs at its next due time
        self._since = now
        self._save(self.last, full=True)

    def _plan(
        self, entry: ScheduleEntry, now: datetime, handled: dict[str, datetime]
    ) -> list[datetime]:
        """The due times of ``entry`` to send now, by its misfire policy; ``handled`` gets
        the latest due time this tick deals with."""
        upcoming = self._next.get(entry.name)
        if upcoming is not None and upcoming > now:
            return []  # nothing came due since the last look
        self._next[entry.name] = entry.schedule.due_after(now)
        last = self.last.get(entry.name)
        if last is None:  # added since this scheduler took over: first runs at its next due
            handled[entry.name] = now
            return []
        catchup, max_catchup, grace = entry.policy(self.app.conf)
        runs = plan(
            entry.schedule, last, now, catchup=catchup, max_catchup=max_catchup,
            grace=grace, since=self._since or now,
        )  # fmt: skip
        if runs.through is None:
            return []
        if runs.skipped:
            logger.warning(
                "beat: %s: %d due time(s) up to %s not sent (catchup=%s, misfire_grace_time=%s)",
                entry.name, runs.skipped, runs.through.isoformat(), catchup, grace,
            )  # fmt: skip
        handled[entry.name] = runs.through
        return runs.send

    def _send(self, runs: list[tuple[ScheduleEntry, datetime]]) -> int:
        """Send the runs no other leader sent; how many were sent. On a broker with
        key-value state, each run's key is reserved first, all in one round trip."""
        lead = self.leadership
        if not runs or not lead.valid():
            return 0
        ids = [run_id(entry.name, due) for entry, due in runs]
        claims = [(run_key(e.name, due), f"{i} {lead.holder} {lead.token}") for (e, due), i in
                  zip(runs, ids, strict=True)]  # fmt: skip
        broker = self.app.broker
        fenced = broker.supports_key_value
        chosen = list(range(len(runs)))
        try:
            if fenced:
                ttl = float(self.app.conf.task_idempotency_ttl)
                held = broker.reserve_many(claims, ttl)
                for n in [n for n in chosen if held[n] is not None]:
                    logger.info("beat: %s due %s was sent already (%s)", runs[n][0].name,
                                runs[n][1].isoformat(), held[n])  # fmt: skip
                chosen = [n for n in chosen if held[n] is None]
            if not lead.valid():  # paused since the check: let the keys go, send nothing
                self._release([claims[n] for n in chosen])
                return 0
            self._publish([(runs[n][0], ids[n]) for n in chosen])
        except BrokerError as exc:  # recorded as handled already: these runs are lost
            for n in chosen:
                logger.error("beat: could not send %s due %s (not retried): %s",
                             runs[n][0].name, runs[n][1].isoformat(), exc)  # fmt: skip
            self._release([claims[n] for n in chosen])
            return 0
        for n in chosen:
            entry, due = runs[n]
            logger.info(
                "Scheduler: Sending due task %s (%s) due %s id %s",
                entry.name, entry.task, due.isoformat(), ids[n],
            )  # fmt: skip
            entry.last_run_at = due
            entry.total_run_count += 1
        return len(chosen)

    def _release(self, claims: list[tuple[str, str]]) -> None:
        if self.app.broker.supports_key_value:
            for key, claim in claims:
                with contextlib.suppress(BrokerError):  # else the key lapses after its ttl
                    self.app.broker.release(key, claim)

    def _publish(self, runs: list[tuple[ScheduleEntry, str]]) -> None:
        """One publish for all runs (``send_task_many``), unless a subclass sends its own
        way (``apply_async``) or an entry's options are wrong (then each on its own)."""
        if type(self).apply_async is Scheduler.apply_async and len(runs) > 1:
            calls = [(e.task, e.args, e.kwargs, {**e.options, "task_id": i}) for e, i in runs]
            try:
                self.app.send_task_many(calls)
                return
            except (TypeError, ValueError):
                pass  # one entry's options are wrong: each on its own names which
        for entry, task_id in runs:
            self.apply_async(entry, task_id)

    def apply_async(self, entry: ScheduleEntry, task_id: str) -> Any:
        """Send one run of ``entry`` (a subclass may send another way)."""
        try:
            return self.app.send_task(
                entry.task, entry.args, entry.kwargs, task_id=task_id, **entry.options
            )
        except (TypeError, ValueError) as exc:  # the entry's options are wrong: say which
            logger.error("beat: %s: cannot send %s: %s", entry.name, entry.task, exc)
            return None

    def _wait(self, now: datetime) -> float:
        wait = min(self.max_interval, self.leadership.ttl / 3)
        if self.live is not None:
            wait = min(wait, LIVE_DELAY)
        upcoming = [
            self._next[e.name] for e in self.data.values() if e.enabled and e.name in self._next
        ]
        if upcoming:
            wait = min(wait, (min(upcoming) - self.now()).total_seconds())
        return max(0.0, wait)

    def _taken_over_runs(self, now: datetime) -> list[tuple[ScheduleEntry, datetime]]:
        """The previous leader's last runs, if recent (within a few leases: an older record
        is a beat that stopped long ago, whose runs the misfire policy already covers)."""
        pending, self._pending = self._pending, {}
        recent = now - timedelta(seconds=PENDING_LEASES * self.leadership.ttl)
        return [(self.data[name], due) for name, dues in pending.items() for due in dues
                if name in self.data and self.data[name].enabled and due > recent]  # fmt: skip

    def _save(
        self,
        last: Mapping[str, datetime],
        *,
        full: bool = False,
        sending: Mapping[str, list[datetime]] | None = None,
    ) -> bool:
        token = self.leadership.token
        if token is None:
            return False
        self._records += 1
        if self._records % state.FULL_EVERY == 0:
            last, full = {**self.last, **last}, True
        try:
            state.save(self.app.broker, self.holder, token, last, full=full, sending=sending)
        except BrokerError as exc:
            logger.error("beat: could not write the state to the broker: %s", exc)
            return False
        return True

    # -- stopping ---------------------------------------------------------------------------
    def sync(self) -> None:
        """Write the whole state to the broker (when leading)."""
        if self.leadership.valid():
            self._save(self.last, full=True)

    def close(self) -> None:
        """Write the state and give up the lease, so a standby takes over at once."""
        self.sync()
        self.leadership.step_down()
        if self.live is not None:
            self.live.stop()

    @property
    def info(self) -> str:
        return f"    . lease: {self.leadership.ttl:g} s as {self.holder}"


#: Celery's default scheduler's name. celeriac has one scheduler, whose state lives in the
#: broker (Celery's PersistentScheduler keeps it in a local shelve file).
PersistentScheduler = Scheduler
