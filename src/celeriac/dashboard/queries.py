"""What each page shows, as plain JSON-ready dicts: the pages render them and the API
returns them, so a script sees what a person sees.

Runtime layer (dashboard). Reads the ``Monitor`` (events) and the broker through its seam
(``queue_length``, ``delayed_count``, ``dead_letters``) under one lock, from a worker
thread of the server (never on its event loop). Imports ``brokers.base``, ``states``.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

from celeriac import states
from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.dashboard.monitor import BUCKET, Monitor

RATE_WINDOW = 30.0  # seconds the "now" rates average over
FAILURE_WINDOW = 300.0  # seconds the failure rate looks back
DEAD_LETTER_LIMIT = 100  # dead letters read per queue and page
RUNNING_SHOWN = 20  # running tasks listed per worker


@dataclass
class Dashboard:
    """What the pages need: the app, its event monitor and the queues to show."""

    app: Any
    monitor: Monitor
    queue_names: list[str] = field(default_factory=list)
    broker_lock: threading.Lock = field(default_factory=threading.Lock)

    def queues(self) -> list[str]:
        return self.queue_names or sorted(self.app.amqp.queues)


# -- overview and workers ------------------------------------------------------------------
def overview(board: Dashboard, series: bool = True) -> dict[str, Any]:
    monitor = board.monitor
    now = time.time()
    recent = monitor.rates.totals(RATE_WINDOW, now)
    window = monitor.rates.totals(FAILURE_WINDOW, now)
    ended = window["succeeded"] + window["failed"]
    workers = monitor.state.freeze_while(lambda: list(monitor.state.workers.values()))
    data: dict[str, Any] = {
        "workers_online": sum(1 for worker in workers if worker.alive),
        "workers_known": len(workers),
        "rates": {name: round(count / RATE_WINDOW, 3) for name, count in recent.items()},
        "totals_last_5m": window,
        "failure_rate": round(window["failed"] / ended, 4) if ended else 0.0,
        "tasks_seen": monitor.state.task_count,
        "tasks_kept": len(monitor.state.tasks),
        "events": monitor.state.event_count,
        "queues": queues(board),
        "time": now,
    }
    if series:
        data["series"] = monitor.rates.series(3600, now)
        data["bucket_seconds"] = BUCKET
    return data


def workers(board: Dashboard) -> list[dict[str, Any]]:
    state = board.monitor.state
    board.monitor.forget_workers()
    now = time.time()

    def read() -> list[dict[str, Any]]:
        running: dict[str, list[dict[str, Any]]] = {}
        for uuid, task in state.tasks.items():
            if task.state == states.STARTED and task.worker is not None:
                running.setdefault(str(task.worker.hostname), []).append(
                    {"id": uuid, "name": task.name, "started": task.started}
                )
        rows = []
        for name, worker in sorted(state.workers.items()):
            busy, size = worker.active or 0, worker.pool_size
            beats = worker.heartbeats
            rows.append({
                "hostname": name, "online": worker.alive, "pid": worker.pid,
                "pool_size": size, "busy": busy,
                "free": max(size - busy, 0) if size is not None else None,
                "processed": worker.processed, "loadavg": worker.loadavg,
                "heartbeat_age": round(now - beats[-1], 1) if beats else None,
                "heartbeat_every": worker.freq, "version": worker.sw_ver,
                "running": running.get(name, [])[:RUNNING_SHOWN],
                # killed or cut off: within this many seconds its tasks go to other workers
                "handed_back_in": None if worker.held_until is None
                else max(round(worker.held_until - now, 1), 0.0),
            })  # fmt: skip
        return rows

    return cast("list[dict[str, Any]]", state.freeze_while(read))


# -- tasks ---------------------------------------------------------------------------------
def task_summary(task: Any) -> dict[str, Any]:
    return {
        "id": task.uuid, "name": task.name, "state": task.state,
        "worker": task.worker.hostname if task.worker is not None else None,
        "received": task.received, "started": task.started, "timestamp": task.timestamp,
        "runtime": task.runtime, "args": task.args, "kwargs": task.kwargs,
    }  # fmt: skip


def moment(text: str, what: str) -> float | None:
    """A time given as unix seconds or ISO 8601 (UTC unless it says otherwise)."""
    if not text.strip():
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be unix seconds or an ISO 8601 time, not {text!r}") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.timezone.utc)).timestamp()


def tasks(board: Dashboard, search: str = "", state: str = "", name: str = "",
          limit: int = 50, offset: int = 0, since: float | None = None,
          until: float | None = None) -> dict[str, Any]:  # fmt: skip
    """The newest tasks first, filtered: ``search`` matches the id, name or argument text,
    ``state`` and ``name`` exactly, ``since``/``until`` the time of its latest event."""
    found = []
    needle = search.strip().lower()
    for uuid, task in board.monitor.state.tasks_by_time():
        if state and task.state != state.upper():
            continue
        stamp = float(task.timestamp or 0.0)
        if (since is not None and stamp < since) or (until is not None and stamp > until):
            continue
        if name and task.name != name:
            continue
        if needle and not any(
            needle in str(text).lower() for text in (uuid, task.name, task.args, task.kwargs)
        ):
            continue
        found.append(task)
    page = found[offset : offset + limit]
    return {
        "total": len(found), "offset": offset, "limit": limit,
        "tasks": [task_summary(task) for task in page],
        "task_names": board.monitor.state.task_types(),
    }  # fmt: skip


def runtimes(board: Dashboard) -> list[dict[str, Any]]:
    """Per task name, the runtime percentiles of the succeeded tasks kept in memory."""
    by_name: dict[str, list[float]] = {}

    def read() -> None:
        for task in board.monitor.state.tasks.values():
            if task.state == states.SUCCESS and isinstance(task.runtime, (int, float)):
                by_name.setdefault(str(task.name), []).append(float(task.runtime))

    board.monitor.state.freeze_while(read)
    rows = []
    for name, values in sorted(by_name.items()):
        values.sort()
        rows.append({"name": name, "count": len(values), "p50": _percentile(values, 50),
                     "p95": _percentile(values, 95), "p99": _percentile(values, 99)})  # fmt: skip
    return rows


def _percentile(ordered: list[float], rank: float) -> float:
    # The nearest-rank percentile: a runtime that was actually measured.
    index = max(math.ceil(rank / 100 * len(ordered)) - 1, 0)
    return round(ordered[index], 6)


def task(board: Dashboard, task_id: str) -> dict[str, Any] | None:
    """A task as the events tell it (with its timeline and family), else as the result
    store knows it; None when neither does."""
    found = board.monitor.state.tasks.get(task_id)
    if found is not None:
        return {
            **task_summary(found), "source": "events", "result": found.result,
            "exception": found.exception, "traceback": found.traceback,
            "retries": found.retries, "eta": found.eta, "expires": found.expires,
            "root_id": found.root_id, "parent_id": found.parent_id,
            "children": sorted(found.children), "timeline": list(found.timeline),
        }  # fmt: skip
    return stored_task(board, task_id)


def stored_task(board: Dashboard, task_id: str) -> dict[str, Any] | None:
    result = board.app.AsyncResult(task_id)
    meta = result.backend.get_task_meta(task_id) if result.backend is not None else {}
    state = meta.get("status", states.PENDING)
    if state == states.PENDING:
        return None
    value = meta.get("result")
    return {
        "id": task_id, "name": meta.get("name"), "state": state, "source": "results",
        "result": repr(value) if state == states.SUCCESS else None,
        "exception": repr(value) if state in states.PROPAGATE_STATES else None,
        "traceback": meta.get("traceback"), "worker": meta.get("worker"),
        "args": meta.get("args"), "kwargs": meta.get("kwargs"), "timeline": [],
        "children": [], "root_id": None, "parent_id": None,
    }  # fmt: skip


# -- queues and dead letters ---------------------------------------------------------------
def queues(board: Dashboard) -> list[dict[str, Any]]:
    """Each known queue's counts. ``delayed_shared``: the broker counts every queue's
    delayed messages together (RabbitMQ), so ``delayed`` is that one count."""
    rows = []
    broker = board.app.broker
    shared = not broker.delays_counted_per_queue
    with board.broker_lock:
        for name in board.queues():
            try:
                ready, delayed = broker.queue_length(name), broker.delayed_count(name)
                dead: int | None = len(broker.dead_letters(name, DEAD_LETTER_LIMIT))
                error = None
            except Exception as exc:  # one unreachable queue never blanks the page
                ready = delayed = dead = None
                error = str(exc)
            into, out = board.monitor.queue_rates.rates(name)
            rows.append({"name": name, "ready": ready, "delayed": delayed,
                         "delayed_shared": shared, "dead_letters": dead,
                         "in_per_s": into, "out_per_s": out, "error": error})  # fmt: skip
    return rows


def letter_summary(app: Any, letter: DeadLetter) -> dict[str, Any]:
    try:
        headers = dict(app.broker.wire_format.decode(letter.payload).headers)
    except Exception:  # a malformed payload (maybe why it is here) is still listed
        headers = {}
    return {
        "entry_id": letter.entry_id, "queue": letter.queue, "message_id": letter.message_id,
        "task": headers.get("task"), "id": headers.get("id") or letter.message_id,
        "reason": letter.reason.value, "detail": letter.detail,
        "delivery_count": letter.delivery_count, "dead_lettered_at": letter.dead_lettered_at,
        "argsrepr": headers.get("argsrepr"), "kwargsrepr": headers.get("kwargsrepr"),
    }  # fmt: skip


def dead_letters(board: Dashboard, queue: str = "", reason: str = "",
                 limit: int = DEAD_LETTER_LIMIT) -> dict[str, Any]:  # fmt: skip
    if reason and reason not in {item.value for item in DeadLetterReason}:
        choices = ", ".join(item.value for item in DeadLetterReason)
        raise ValueError(f"unknown reason {reason!r}: one of {choices}")
    names = [queue] if queue else board.queues()
    letters: list[DeadLetter] = []
    with board.broker_lock:
        for name in names:
            letters.extend(board.app.broker.dead_letters(name, limit))
    rows = [letter_summary(board.app, letter) for letter in letters]
    return {
        "letters": [row for row in rows if not reason or row["reason"] == reason],
        "reasons": dict(Counter(row["reason"] for row in rows)),
        "queues": board.queues(),
    }


def dead_letter(board: Dashboard, queue: str, entry_id: str) -> dict[str, Any] | None:
    with board.broker_lock:
        letters = board.app.broker.dead_letters(queue, DEAD_LETTER_LIMIT * 10)
    for letter in letters:
        if letter.entry_id == entry_id:
            try:
                headers = dict(board.app.broker.wire_format.decode(letter.payload).headers)
            except Exception:
                headers = {}
            return {**letter_summary(board.app, letter), "headers": _jsonable(headers)}
    return None


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


__all__ = ["Dashboard", "dead_letter", "dead_letters", "overview", "queues", "task", "tasks",
           "workers"]  # fmt: skip
