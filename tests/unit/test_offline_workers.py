"""A worker that stops answering (killed, cut off): the events State marks it offline after
three missed heartbeats and says which tasks it held and by when the broker hands them to
other workers; a worker's heartbeats carry the broker's lease for that."""

from __future__ import annotations

import time

from celeriac import Celery, states
from celeriac.events.worker_events import for_worker


def heartbeat(hostname: str, at: float, lease: float | None) -> dict[str, object]:
    return {"type": "worker-heartbeat", "hostname": hostname, "timestamp": at,
            "local_received": at, "freq": 2.0, "lease": lease, "pid": 7}  # fmt: skip


def task_event(kind: str, uuid: str, hostname: str, at: float) -> dict[str, object]:
    return {"type": f"task-{kind}", "uuid": uuid, "hostname": hostname, "timestamp": at,
            "local_received": at, "name": "proj.slow"}  # fmt: skip


def test_a_silent_worker_holds_its_tasks_until_its_lease_runs_out(app: Celery) -> None:
    state = app.events.State()
    last = time.time() - 10  # 10 s ago: five heartbeats (2 s apart) missed
    state.event(heartbeat("w1@h", last - 2, 30.0))
    state.event(task_event("received", "t-1", "w1@h", last - 1))
    state.event(task_event("started", "t-1", "w1@h", last - 1))
    state.event(task_event("received", "t-2", "w1@h", last - 1))
    state.event(task_event("received", "t-3", "w1@h", last - 1))
    state.event(task_event("succeeded", "t-3", "w1@h", last - 0.5))
    state.event(heartbeat("w1@h", last, 30.0))
    worker = state.workers["w1@h"]
    assert not worker.alive
    assert worker.held_until == last + 30.0
    held = state.tasks_held_by("w1@h")
    assert sorted(task.uuid for task in held) == ["t-1", "t-2"]
    assert {task.state for task in held} == {states.STARTED, states.RECEIVED}


def test_alive_workers_and_clean_shutdowns_hold_nothing_back(app: Celery) -> None:
    state = app.events.State()
    now = time.time()
    state.event(heartbeat("w2@h", now, 30.0))
    assert state.workers["w2@h"].alive and state.workers["w2@h"].held_until is None
    state.event({"type": "worker-offline", "hostname": "w2@h", "timestamp": now,
                 "local_received": now})  # fmt: skip
    assert state.workers["w2@h"].held_until is None  # a warm shutdown gives messages back
    state.event(heartbeat("old@h", now - 60, None))
    assert state.workers["old@h"].held_until is None  # no lease known: no estimate


def test_a_workers_heartbeat_carries_the_brokers_lease(app: Celery) -> None:
    app.conf.broker_transport_options = {"visibility_timeout": 45}
    events = for_worker(app, "w3@h", task_events=False, active=lambda: 0, pool_size=lambda: 1)
    events.beat()
    posted = [dict(fields) for fields in events.dispatcher._buffer]
    assert posted[-1]["type"] == "worker-heartbeat" and posted[-1]["lease"] == 45.0
