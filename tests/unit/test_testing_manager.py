"""``celery.contrib.testing.manager.Manager``: waiting with growing pauses, joining results,
and asking a running worker (over remote control) which tasks it received or accepted."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from celeriac import Celery
from celeriac.contrib.testing.manager import Manager, ManagerMixin, Sentinel
from celeriac.testing import start_worker

NODE = "manager@unit"
FAST: dict[str, Any] = {"interval_start": 0, "interval_step": 0}  # no pause between tries


def make_app() -> Celery:
    return Celery("mgr", broker="memory://", backend="cache+memory://")


def test_wait_for_retries_until_the_call_stops_raising() -> None:
    app = make_app()
    err = io.StringIO()
    manager = Manager(app, stderr=err)
    tries: list[int] = []
    told: list[tuple[str, int]] = []

    def ready() -> int:
        tries.append(1)
        if len(tries) < 3:
            raise LookupError(f"not yet {len(tries)}")
        return 42

    value = manager.wait_for(
        ready, LookupError, desc="the answer", emit_warning=True,
        errback=lambda exc, pause, retries: told.append((str(exc), retries)), **FAST,
    )  # fmt: skip
    assert value == 42 and len(tries) == 3
    assert told == [("not yet 1", 0), ("not yet 2", 1)]
    assert err.getvalue().count("Still waiting for the answer.") == 2
    with pytest.raises(LookupError, match="never"):
        manager.wait_for(_raises(LookupError("never")), LookupError, max_retries=2, **FAST)
    app.close()


def test_ensure_not_for_a_while() -> None:
    app = make_app()
    manager = Manager(app)
    manager.ensure_not_for_a_while(_raises(Sentinel()), Sentinel, max_retries=3, **FAST)
    with pytest.raises(AssertionError, match="Should not have happened: the alarm"):
        manager.ensure_not_for_a_while(lambda: True, Sentinel, desc="the alarm", **FAST)
    app.close()


def test_retry_over_time_pauses_grow_to_the_maximum() -> None:
    manager = Manager(make_app())
    pauses: list[float] = []

    def record(exc: BaseException, intervals: Any, retries: int) -> float:
        pauses.append(next(intervals))
        return 0.0  # the pause actually taken

    with pytest.raises(Sentinel):
        manager.retry_over_time(
            _raises(Sentinel()), Sentinel, errback=record, max_retries=5,
            interval_start=1, interval_step=2, interval_max=4,
        )  # fmt: skip
    assert pauses == [1, 3, 4, 4, 4]
    manager.app.close()


def test_assert_received_and_accepted_ask_the_worker() -> None:
    app = make_app()
    gate, started = threading.Event(), threading.Event()

    @app.task
    def held(n: int) -> int:
        started.set()
        gate.wait(10)
        return n

    manager = Manager(app, stdout=io.StringIO())
    with start_worker(app, hostname=NODE, pool="threads", concurrency=1, prefetch_multiplier=2):
        first, second = held.delay(1), held.delay(2)
        assert started.wait(5)
        assert manager.assert_received([first.id, second.id], max_retries=50)
        assert manager.assert_accepted([first.id], max_retries=50)
        assert manager.query_task_states([first.id, second.id]) == {
            "active": {first.id},
            "reserved": {second.id},
        }
        with pytest.raises(Sentinel):  # waiting for a slot: received, not accepted
            manager.assert_accepted([second.id], max_retries=1, **FAST)
        assert manager.missing_results([first, second]) == [first.id, second.id]
        gate.set()
        # It waits; like Celery's (a get with a callback), it returns no values.
        assert manager.join(app.ResultSet([first, second]), timeout=5) == []
        assert manager.missing_results([first, second]) == []
        assert manager.join(first, timeout=5) == []
        manager.assert_result_tasks_in_progress_or_completed([first, second])
        manager.wait_until_idle()
        assert manager.inspect().active() == {NODE: []}
    app.close()


def test_join_remarks_what_is_missing_then_fails() -> None:
    app = make_app()
    out = io.StringIO()
    manager = Manager(app, stdout=out)
    waiting = app.AsyncResult("never-sent")
    with pytest.raises(AssertionError, match="Missing task results"):
        manager.join(waiting, max_retries=2, timeout=0.01)
    assert out.getvalue().count("!Still waiting for 1/1: [never-sent]") == 2
    assert Manager(app, no_join=True).join(waiting) is None
    app.close()


def test_the_mixin_serves_a_class_of_ones_own() -> None:
    class Suite(ManagerMixin):
        def __init__(self, app: Celery) -> None:
            self.app = app
            self._init_manager(block_timeout=60)

    app = make_app()
    suite = Suite(app)
    assert suite.block_timeout == 60 and suite.no_join is False
    assert suite.true_or_raise(lambda: "yes") == "yes"
    with pytest.raises(Sentinel):
        suite.true_or_raise(lambda: [])
    app.close()


def _raises(exc: BaseException) -> Any:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise exc

    return fail
