"""``State`` fed with hand-made events: workers alive by their heartbeats (offline after
three missed), tasks moving through their states in any arrival order, and the views a
monitor reads (by time, type, worker)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from celeriac import states
from celeriac.events import Event, State, group_from
from celeriac.events.state import Task, Worker, heartbeat_expires


def worker_event(kind: str, hostname: str = "w1@host", ago: float = 0.0, **fields: Any) -> dict:
    now = time.time() - ago
    base = {"freq": 2.0, "pid": 42, "active": 0, "processed": 0}
    return Event(f"worker-{kind}", {**base, **fields}, hostname=hostname, timestamp=now,
                 local_received=now)  # fmt: skip


def task_event(kind: str, uuid: str = "t1", at: float | None = None, clock: int = 0,
               hostname: str = "w1@host", **fields: Any) -> dict:  # fmt: skip
    at = time.time() if at is None else at
    return Event(f"task-{kind}", uuid=uuid, hostname=hostname, timestamp=at,
                 local_received=at, clock=clock, **fields)  # fmt: skip


def test_event_and_group() -> None:
    event = Event("task-sent", uuid="x")
    assert event["type"] == "task-sent" and event["uuid"] == "x"
    assert isinstance(event["timestamp"], float)
    assert Event("custom", timestamp=1.0)["timestamp"] == 1.0
    assert group_from("task-sent") == "task" and group_from("custom-my-event") == "custom"


def test_a_worker_is_alive_while_its_heartbeats_come() -> None:
    state = State()
    (worker, created) = state.event(worker_event("online", active=1, processed=5))
    assert created and isinstance(worker, Worker)
    assert worker.alive and worker.status_string == "ONLINE"
    assert (worker.active, worker.processed, worker.pid, worker.freq) == (1, 5, 42, 2.0)
    state.event(worker_event("heartbeat", processed=7))
    assert worker.processed == 7 and len(worker.heartbeats) == 2
    assert [w.hostname for w in state.alive_workers()] == ["w1@host"]


def test_a_worker_is_offline_after_three_missed_heartbeats() -> None:
    state = State()
    # A heartbeat 5 s ago (two missed, at a 2 s period): still alive.
    state.event(worker_event("heartbeat", "late@host", ago=5.0))
    # One 6.5 s ago: three missed, offline.
    state.event(worker_event("heartbeat", "gone@host", ago=6.5))
    assert state.workers["late@host"].alive
    assert not state.workers["gone@host"].alive
    assert state.workers["gone@host"].status_string == "OFFLINE"
    assert [w.hostname for w in state.alive_workers()] == ["late@host"]
    assert heartbeat_expires(100.0, 2.0) == 106.0  # 300 % of the period


def test_worker_offline_is_at_once_and_it_stays_listed() -> None:
    left: list[Worker] = []
    state = State(on_node_leave=left.append)
    state.event(worker_event("online"))
    state.event(worker_event("offline"))
    worker = state.workers["w1@host"]
    assert not worker.alive and worker.offline_at is not None
    assert left == [worker]
    state.event(worker_event("online"))  # it came back
    assert worker.alive and worker.offline_at is None


def test_only_the_last_heartbeats_are_kept() -> None:
    state = State()
    for ago in (8, 6, 4, 2, 0, 1):  # the last one arrived out of order
        state.event(worker_event("heartbeat", ago=ago))
    beats = state.workers["w1@host"].heartbeats
    assert len(beats) == Worker.heartbeat_max and beats == sorted(beats)


def test_a_task_moves_through_its_states() -> None:
    state = State()
    now = time.time()
    state.event(task_event("sent", at=now, hostname="client@host", name="proj.add",
                           args="(2, 3)", kwargs="{}", queue="celery"))  # fmt: skip
    task = state.tasks["t1"]
    assert task.state == states.PENDING and task.client == "client@host"
    state.event(task_event("received", at=now + 1, name="proj.add", args="(2, 3)",
                           kwargs="{}", retries=0))  # fmt: skip
    assert task.state == states.RECEIVED and task.worker is state.workers["w1@host"]
    state.event(task_event("started", at=now + 2))
    assert task.state == states.STARTED and task.started == now + 2
    state.event(task_event("succeeded", at=now + 3, result="5", runtime=0.5))
    assert task.state == states.SUCCESS and task.ready
    assert (task.name, task.args, task.result, task.runtime) == ("proj.add", "(2, 3)", "5", 0.5)
    assert (task.sent, task.received, task.succeeded) == (now, now + 1, now + 3)
    assert task.info() == {"args": "(2, 3)", "kwargs": "{}", "retries": 0, "result": "5",
                           "runtime": 0.5}  # fmt: skip
    assert task.as_dict()["worker"] == "w1@host"
    assert state.task_count == 1 and state.event_count == 4
    assert state.task_types() == ["proj.add"]
    assert repr(task) == f"<Task: proj.add(t1) SUCCESS clock:{task.clock}>"


def test_late_events_fill_fields_but_never_move_the_state_back() -> None:
    state = State()
    now = time.time()
    state.event(task_event("succeeded", at=now + 2, result="5"))
    state.event(task_event("started", at=now + 1))
    state.event(task_event("received", at=now, name="proj.add", args="(2, 3)"))
    task = state.tasks["t1"]
    assert task.state == states.SUCCESS and task.timestamp == now + 2
    assert task.name == "proj.add" and task.args == "(2, 3)"  # the received event's fields
    assert task.started == now + 1  # each step's time is kept


def test_a_retried_task_runs_again() -> None:
    state = State()
    for kind in ("received", "started", "retried", "received", "started", "succeeded"):
        state.event(task_event(kind, exception="ValueError()" if kind == "retried" else None))
        if kind == "retried":
            assert state.tasks["t1"].state == states.RETRY
    assert state.tasks["t1"].state == states.SUCCESS


def test_a_failure_keeps_its_exception_and_traceback() -> None:
    state = State()
    state.event(task_event("failed", exception="ValueError('boom')", traceback="Traceback..."))
    task = state.tasks["t1"]
    assert task.state == states.FAILURE and task.exception == "ValueError('boom')"
    assert task.traceback == "Traceback..."


@pytest.mark.parametrize(
    ("kind", "state_name"), [("revoked", states.REVOKED), ("rejected", states.REJECTED)]
)
def test_revoked_and_rejected(kind: str, state_name: str) -> None:
    state = State()
    state.event(task_event(kind))
    assert state.tasks["t1"].state == state_name


def test_a_custom_event_names_a_custom_state() -> None:
    state = State()
    state.event(task_event("received", name="proj.long"))
    state.event(task_event("started"))
    task, created = state.event(task_event("progress", done=3))
    assert not created and task.state == "PROGRESS" and task.done == 3
    state.event(task_event("succeeded"))
    assert task.state == states.SUCCESS


def test_other_events_are_counted_only() -> None:
    state = State()
    assert state.event({"type": "my-thing", "timestamp": time.time()}) == (None, False)
    assert state.event_count == 1 and not state.tasks and not state.workers


def test_views_by_time_type_and_worker() -> None:
    state = State()
    now = time.time()
    for index, (uuid, name, host) in enumerate(
        [("a", "proj.add", "w1@h"), ("b", "proj.mul", "w2@h"), ("c", "proj.add", "w2@h")]
    ):
        state.event(task_event("received", uuid, at=now + index, name=name, hostname=host))
    assert [uuid for uuid, _ in state.tasks_by_time()] == ["c", "b", "a"]
    assert [uuid for uuid, _ in state.tasks_by_time(reverse=False)] == ["a", "b", "c"]
    assert [uuid for uuid, _ in state.tasks_by_time(limit=2)] == ["c", "b"]
    assert [uuid for uuid, _ in state.tasks_by_type("proj.add")] == ["c", "a"]
    assert {task.uuid for task in state.tasks_by_type["proj.add"]} == {"a", "c"}
    assert {task.uuid for task in state.tasks_by_worker["w2@h"]} == {"b", "c"}
    assert [uuid for uuid, _ in state.tasks_by_worker("w2@h", limit=1)] == ["c"]
    assert [uuid for uuid, _ in state.itertasks(limit=2)] == ["a", "b"]
    state.event(task_event("succeeded", "a", at=now + 5))  # its latest event is now newest
    assert next(state.tasks_by_time())[0] == "a"


def test_children_and_bounds() -> None:
    state = State(max_tasks_in_memory=3)
    state.event(task_event("received", "parent"))
    state.event(task_event("received", "child", parent_id="parent", root_id="parent"))
    assert state.tasks["parent"].children == {"child"}
    assert state.tasks["child"].parent is state.tasks["parent"]
    assert state.tasks["child"].root is state.tasks["parent"]
    assert state.tasks["parent"].parent is None
    for uuid in ("x", "y"):
        state.event(task_event("received", uuid))
    assert list(state.tasks) == ["child", "x", "y"]  # the oldest was forgotten


def test_clear_tasks_keeps_those_in_progress() -> None:
    state = State()
    state.event(task_event("succeeded", "done"))
    state.event(task_event("started", "running"))
    state.clear_tasks()
    assert list(state.tasks) == ["running"]
    state.clear(ready=False)
    assert not state.tasks and state.event_count == 0


def test_callback_and_node_join() -> None:
    seen: list[str] = []
    joined: list[str] = []
    state = State(callback=lambda _, event: seen.append(event["type"]),
                  on_node_join=lambda worker: joined.append(worker.hostname))  # fmt: skip
    state.event(worker_event("online"))
    state.event(worker_event("heartbeat"))
    assert seen == ["worker-online", "worker-heartbeat"] and joined == ["w1@host"]
    assert isinstance(state.get_or_create_task("z")[0], Task)
    assert state.get_or_create_worker("w1@host") == (state.workers["w1@host"], False)
    assert state.freeze_while(lambda: len(state.workers)) == 1
