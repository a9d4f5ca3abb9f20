"""Beat's runtime with a fake clock: leading, exactly-once sends, takeover, misfires.

Two schedulers share one memory broker (one app) as two processes share Redis; the
broker's clock, each scheduler's wall clock and its monotonic clock are moved by hand,
so a paused leader is one whose clocks stood still while the broker's ran on.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.beat import (
    PersistentScheduler,
    ScheduleEntry,
    Scheduler,
    Service,
    crontab,
    run_id,
    run_key,
)
from celeriac.beat.misfire import plan
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import ImproperlyConfigured
from celeriac.schedules import schedule

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=timezone.utc)


class Clock:
    """Seconds since T0; ``now`` is the matching aware UTC datetime."""

    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.t)


class FakeScheduler(Scheduler):
    """A scheduler reading its wall clock and monotonic clock from ``clock``."""

    def __init__(self, app: Any, clock: Clock, holder: str, **kwargs: Any) -> None:
        self.clock = clock
        super().__init__(app, holder=holder, monotonic=clock, lease_timeout=10, **kwargs)

    def now(self) -> datetime:
        return self.clock.now()


def make_app(broker_clock: Clock, **entry: Any) -> Celery:
    app = Celery("proj", broker=MemoryBroker(clock=broker_clock))
    app.conf.beat_schedule = {
        "tick": {"task": "proj.tick", "schedule": 1.0, "options": {"queue": "beat"}, **entry}
    }
    return app


def sent_ids(app: Celery) -> list[str]:
    broker = app.broker
    ids = []
    while broker.queue_length("beat"):
        import asyncio

        for delivery in asyncio.run(broker.fetch(["beat"], 100, 0.1)):
            ids.append(app.broker.wire_format.decode(delivery.payload).headers["id"])
    return ids


def due_ids(first: int, last: int) -> list[str]:
    return [run_id("tick", T0 + timedelta(seconds=s)) for s in range(first, last + 1)]


def run(scheduler: Scheduler, clock: Clock, until: float) -> None:
    """Tick ``scheduler`` as its loop would, moving ``clock`` by each wait, until ``until``."""
    while clock.t < until:
        wait = scheduler.tick()
        clock.t = min(until, clock.t + max(wait, 0.01))


def test_the_leader_sends_each_due_time_once_with_its_run_id() -> None:
    clock = Clock()
    app = make_app(clock)
    beat = FakeScheduler(app, clock, "a")
    run(beat, clock, 5.5)
    assert sent_ids(app) == due_ids(1, 5)


def test_only_one_of_two_schedulers_leads() -> None:
    clock = Clock()
    app = make_app(clock)
    a, b = FakeScheduler(app, clock, "a"), FakeScheduler(app, clock, "b")
    while clock.t < 5.5:
        wait = min(a.tick(), b.tick())
        clock.t += max(wait, 0.01)
    assert a.leadership.leading and not b.leadership.leading
    assert sent_ids(app) == due_ids(1, 5)


def test_a_standby_takes_over_and_catches_up_every_missed_run() -> None:
    broker_clock = Clock()
    app = make_app(broker_clock, catchup="all")
    a_clock, b_clock = Clock(), Clock()
    a, b = FakeScheduler(app, a_clock, "a"), FakeScheduler(app, b_clock, "b")
    a.tick()
    b.tick()
    for t in (1.0, 2.0, 3.0):  # a leads; b stands by
        a_clock.t = b_clock.t = broker_clock.t = t
        a.tick()
        b.tick()
    # a pauses (its clocks stand still); the broker's and b's run on past the lease
    for t in range(4, 16):
        b_clock.t = broker_clock.t = float(t)
        b.tick()
    assert b.leadership.leading
    # a wakes: it still believes it leads until it asks again, and sends nothing
    a_clock.t = 15.0
    a.tick()
    assert not a.leadership.leading
    assert sent_ids(app) == due_ids(1, 15)


def test_a_leader_paused_between_its_check_and_its_send_sends_no_duplicate() -> None:
    broker_clock = Clock()
    app = make_app(broker_clock, catchup="all")
    a_clock, b_clock = Clock(), Clock()
    a, b = FakeScheduler(app, a_clock, "a"), FakeScheduler(app, b_clock, "b")
    a.tick()
    b.tick()
    # b takes over once a's lease lapsed and sends seconds 1..12
    for t in range(11, 13):
        b_clock.t = broker_clock.t = float(t)
        b.tick()
    # a, frozen just after its renewal at 0, wakes with a lease it believes valid
    a_clock.t = 0.5
    a.last["tick"] = T0
    a.clock = b_clock  # it reads the wall clock on waking: every run up to 12 looks due
    runs = [(a.data["tick"], T0 + timedelta(seconds=due)) for due in range(1, 13)]
    assert a._send(runs) == 0
    assert sent_ids(app) == due_ids(1, 12), "each run once: the run keys were b's"


def test_catchup_latest_sends_one_run_for_an_outage() -> None:
    clock = Clock()
    app = make_app(clock)
    a = FakeScheduler(app, clock, "a")
    a.tick()
    clock.t = 30.5  # nothing ran for 30 s; a's lease lapsed too
    a.tick()
    assert sent_ids(app) == due_ids(30, 30)


def test_state_survives_a_restart_through_the_broker() -> None:
    clock = Clock()
    app = make_app(clock, catchup="all")
    a = FakeScheduler(app, clock, "a")
    run(a, clock, 3.5)
    a.close()  # gives up the lease and writes the state
    clock.t = 6.5
    again = FakeScheduler(app, clock, "a2")
    again.tick()
    assert sent_ids(app) == due_ids(1, 6)


def test_misfire_policies() -> None:
    every = schedule(1.0)
    last, now = T0, T0 + timedelta(seconds=10)
    since = T0 + timedelta(seconds=8)
    common: dict[str, Any] = {"max_catchup": 100, "grace": None, "since": since}
    latest = plan(every, last, now, catchup="latest", **common)
    assert latest.send == [now] and latest.skipped == 9 and latest.through == now
    every_run = plan(every, last, now, catchup="all", **common)
    assert len(every_run.send) == 10 and every_run.skipped == 0
    capped = plan(every, last, now, catchup="all", **{**common, "max_catchup": 3})
    assert capped.send[0] == T0 + timedelta(seconds=8) and capped.skipped == 7
    none = plan(every, last, now, catchup="none", **common)
    assert none.send == [T0 + timedelta(seconds=9), now]
    graced = plan(every, last, now, catchup="all", **{**common, "grace": 2.5})
    assert graced.send == [T0 + timedelta(seconds=s) for s in (8, 9, 10)]
    assert plan(every, now, now, catchup="all", **common).through is None


def test_crontab_entries_use_the_cron_starting_deadline() -> None:
    app = Celery("proj", broker="memory://")
    app.conf.beat_cron_starting_deadline = 30
    entry = ScheduleEntry("nightly", "proj.report", schedule=crontab(minute=0, hour=3), app=app)
    assert entry.policy(app.conf) == ("latest", 100, 30.0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "t", "schedule": 1, "queue": "q"}, "unknown key 'queue'"),
        ({"task": "t"}, "'schedule' is missing"),
        ({"task": "t", "schedule": 1, "catchup": "some"}, "'catchup' must be one of"),
        ({"task": "t", "schedule": "often"}, "a schedule must be"),
        ({"schedule": 1}, "'task' must be a task name"),
    ],
)
def test_bad_entries_are_refused_with_the_fix(fields: dict[str, Any], message: str) -> None:
    app = Celery("proj", broker="memory://")
    app.conf.beat_schedule = {"bad": fields}
    with pytest.raises(ImproperlyConfigured, match=message):
        Scheduler(app)


def test_add_periodic_task_in_on_after_configure() -> None:
    app = Celery("proj", broker="memory://")

    @app.task(name="proj.test")
    def test(arg: str) -> str:
        return arg

    @app.on_after_configure.connect
    def setup_periodic_tasks(sender: Celery, **kwargs: Any) -> None:
        sender.add_periodic_task(10.0, test.s("hello"), name="add every 10")
        sender.add_periodic_task(crontab(hour=7, minute=30), test.s("morning"), expires=10)

    beat = Scheduler(app)
    assert set(beat.schedule) == {"add every 10", repr(test.s("morning"))}
    entry = beat.schedule["add every 10"]
    assert entry.task == "proj.test" and entry.args == ("hello",)


def test_service_sends_beat_init_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    app = Celery("proj", broker="memory://")
    seen: list[Any] = []

    def on_init(sender: Any, **kwargs: Any) -> None:
        seen.append(sender)
        sender.stop()

    signals.beat_init.connect(on_init)
    try:
        service = Service(app, scheduler_cls="celery.beat:PersistentScheduler")
        with caplog.at_level(logging.INFO, "celeriac.beat"):
            service.start()
    finally:
        signals.beat_init.disconnect(on_init)
    assert seen == [service]
    assert service.scheduler_cls is PersistentScheduler


def test_a_foreign_scheduler_class_is_refused() -> None:
    app = Celery("proj", broker="memory://")
    with pytest.raises(ImproperlyConfigured, match="not a subclass"):
        Service(app, scheduler_cls="celeriac.beat:ScheduleEntry")


def wait_for_change(beat: Scheduler, version: int) -> None:
    """Until the scheduler's follower has read a change past ``version``."""
    assert beat.live is not None
    deadline = time.monotonic() + 5
    while beat.live.snapshot()[0] <= version:
        assert time.monotonic() < deadline, "the change never arrived"
        time.sleep(0.01)  # the follower thread reads the topic


def test_live_changes_apply_without_a_restart() -> None:
    clock = Clock()
    app = make_app(clock)
    beat = FakeScheduler(app, clock, "a")
    beat.tick()
    assert beat.live is not None and beat.live.ready.wait(5)
    version = beat.live.snapshot()[0]
    app.beat.add("report", "proj.report", crontab(minute=0, hour=3), args=["sales"],
                 options={"queue": "reports"})  # fmt: skip
    app.beat.disable("tick")
    wait_for_change(beat, version + 1)
    beat.tick()
    assert beat.schedule["report"].args == ("sales",)
    assert beat.schedule["report"].schedule == crontab(minute=0, hour=3)
    assert beat.schedule["tick"].enabled is False
    clock.t = 3.5
    beat.tick()
    assert sent_ids(app) == [], "a disabled entry sends nothing"
    with pytest.raises(ValueError, match="sets schedule in beat_schedule"):
        app.beat.update("tick", schedule=5.0)
    version = beat.live.snapshot()[0]
    app.beat.remove("report")
    wait_for_change(beat, version)
    beat.tick()
    assert set(beat.schedule) == {"tick"}
    assert set(app.beat.entries()) == {"tick"}
    beat.close()


def test_a_new_leader_sends_the_runs_its_predecessor_recorded_but_did_not_send() -> None:
    from celeriac.beat import state

    clock = Clock()
    app = make_app(clock, catchup="all")
    due = [T0 + timedelta(seconds=s) for s in (1, 2)]
    # the last leader recorded seconds 1 and 2 as being sent, reserved 1's key, then died
    state.save(app.broker, "gone", 1, {"tick": due[-1]}, full=True, sending={"tick": due})
    app.broker.reserve(run_key("tick", due[0]), "sent by gone", 60)
    clock.t = 2.5
    beat = FakeScheduler(app, clock, "b")
    beat.tick()
    assert sent_ids(app) == due_ids(2, 2), "1 went out (its key is held); 2 is sent now"
