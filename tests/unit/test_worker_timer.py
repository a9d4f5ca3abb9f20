"""``worker.timer``: what a user bootstep schedules on (Celery's worker timer API)."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

from celeriac.worker.timer import Timer


def test_call_after_and_call_at_run_once_in_time_order() -> None:
    timer = Timer()
    calls: list[str] = []
    done = threading.Event()
    soon = datetime.now(timezone.utc) + timedelta(seconds=0.05)
    timer.call_after(0.2, lambda: (calls.append("late"), done.set()))
    timer.call_at(soon, calls.append, ("at",))

    def record(what: str) -> None:
        calls.append(what)

    timer.call_after(0.0, record, kwargs={"what": "now"})
    try:
        assert done.wait(5)
        assert calls == ["now", "at", "late"]
        assert len(timer) == 0
    finally:
        timer.stop()


def test_call_repeatedly_repeats_until_cancelled_and_survives_errors() -> None:
    timer = Timer()
    runs: list[float] = []
    enough = threading.Event()

    def beat() -> None:
        runs.append(time.monotonic())
        if len(runs) == 3:
            enough.set()
        raise OSError("disk full")  # logged; the schedule holds

    tref = timer.call_repeatedly(0.05, beat)
    try:
        assert enough.wait(5)
        timer.cancel(tref)
        assert tref.cancelled
        count = len(runs)
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:  # no further run may come after the cancel
            assert len(runs) <= count + 1  # (one may have been under way)
            time.sleep(0.05)
        assert all(b - a >= 0.04 for a, b in itertools.pairwise(runs))
    finally:
        timer.stop()


def test_a_stopped_timer_refuses_new_entries() -> None:
    timer = Timer()
    timer.call_after(60, print)
    assert [entry.fun for entry in timer.queue] == [print]
    timer.stop()
    with pytest.raises(RuntimeError, match="timer has stopped"):
        timer.call_after(1, print)
    other = Timer()
    try:
        with pytest.raises(ValueError, match="interval above 0"):
            other.call_repeatedly(0, print)
    finally:
        other.stop()  # its thread, not left for the interpreter to wait on
