"""``State``: the cluster as the events tell it (Celery's ``celery.events.state``).

Workers with their heartbeats (alive until ``expire_window`` percent of their heartbeat
period passes without one: 300 %, three missed heartbeats) and tasks with their state
transitions. Events may arrive out of order (several workers, several payloads): a task's
state moves only forward by Celery's precedence, and an older event only fills fields.
Pure logic: imports ``states`` and the stdlib; safe to feed from one thread and read from
another (one lock).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from celeriac import states

HEARTBEAT_EXPIRE_WINDOW = 300  # percent of the heartbeat period: offline after 3 missed
#: A task event's state (its type without ``task-``).
TASK_EVENT_TO_STATE = {
    "sent": states.PENDING, "received": states.RECEIVED, "started": states.STARTED,
    "failed": states.FAILURE, "retried": states.RETRY, "succeeded": states.SUCCESS,
    "revoked": states.REVOKED, "rejected": states.REJECTED,
}  # fmt: skip
# Celery's precedence: a lower index wins; a custom state sits between FAILURE and REVOKED.
_PRECEDENCE = ["SUCCESS", "FAILURE", None, "REVOKED", "STARTED", "RECEIVED", "REJECTED",
               "RETRY", "PENDING"]  # fmt: skip
_RANK = {state: index for index, state in enumerate(_PRECEDENCE)}


def precedence(state: str | None) -> int:
    """The rank of a state (lower wins); a custom state ranks as Celery's unknown ones."""
    return _RANK.get(state, _RANK[None])


def heartbeat_expires(timestamp: float, freq: float = 60.0,
                      expire_window: float = HEARTBEAT_EXPIRE_WINDOW) -> float:  # fmt: skip
    """When a heartbeat sent at ``timestamp`` every ``freq`` seconds stops counting."""
    return timestamp + freq * (expire_window / 100.0)


class Worker:
    """A worker as its events tell it."""

    heartbeat_max = 4  # heartbeats kept (their local receive times)
    expire_window = HEARTBEAT_EXPIRE_WINDOW
    _fields = ("hostname", "pid", "freq", "heartbeats", "clock", "active", "processed",
               "loadavg", "sw_ident", "sw_ver", "sw_sys", "pool_size", "lease")  # fmt: skip

    def __init__(self, hostname: str | None = None, pid: int | None = None,
                 freq: float = 60.0, **fields: Any) -> None:  # fmt: skip
        self.hostname, self.pid, self.freq = hostname, pid, freq
        self.heartbeats: list[float] = []
        self.clock = 0
        self.active: int | None = None
        self.processed: int | None = None
        self.loadavg: list[float] | None = None
        self.sw_ident = self.sw_ver = self.sw_sys = None
        self.pool_size: int | None = None
        self.lease: float | None = None  # seconds a message it holds stays leased to it
        self.offline_at: float | None = None  # local time of its worker-offline event
        self.update(fields)

    def update(self, fields: Mapping[str, Any], **more: Any) -> None:
        for key, value in {**fields, **more}.items():
            if key in self._fields and key != "heartbeats":
                setattr(self, key, value)

    def event(self, type_: str | None, timestamp: float | None = None,
              local_received: float | None = None, fields: Mapping[str, Any] | None = None,
              ) -> None:  # fmt: skip
        """Apply a worker event (``online``, ``heartbeat``, ``offline``); a task event from
        this worker counts as a sign of life (``type_`` None)."""
        if fields:
            self.update(fields)
        if type_ == "offline":
            self.heartbeats.clear()
            self.offline_at = local_received or time.time()
            return
        if not local_received or not timestamp:
            return
        if type_ is not None:
            self.offline_at = None
        beats = self.heartbeats
        if len(beats) >= self.heartbeat_max:
            beats.pop(0)
        if beats and local_received < beats[-1]:
            bisect.insort(beats, local_received)
        else:
            beats.append(local_received)

    @property
    def heartbeat_expires(self) -> float:
        return heartbeat_expires(self.heartbeats[-1], float(self.freq), self.expire_window)

    @property
    def alive(self) -> bool:
        return bool(self.heartbeats) and time.time() < self.heartbeat_expires

    @property
    def held_until(self) -> float | None:
        """For a worker that stopped answering without saying goodbye (killed, cut off):
        the local time by which the broker hands the messages it held to other workers,
        its last heartbeat plus its lease (an upper bound: leases are renewed between
        heartbeats). None while it is alive, after a clean ``worker-offline`` (a clean
        shutdown hands its messages back itself), or when its heartbeats carry no lease."""
        if self.alive or not self.heartbeats or not self.lease:
            return None
        return self.heartbeats[-1] + float(self.lease)

    @property
    def status_string(self) -> str:
        return "ONLINE" if self.alive else "OFFLINE"

    @property
    def id(self) -> str:
        return f"{self.hostname}.{self.pid}"

    def as_dict(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in self._fields}
        data["heartbeats"] = list(self.heartbeats)
        data["alive"] = self.alive
        return data

    def __repr__(self) -> str:
        return f"<Worker: {self.hostname} ({self.status_string} clock:{self.clock})>"


class Task:
    """A task as its events tell it: ``state`` and the time of each step (``received``,
    ``started``, ``succeeded``...), with the fields its events carried."""

    _fields = ("uuid", "name", "state", "received", "sent", "started", "rejected",
               "succeeded", "failed", "retried", "revoked", "args", "kwargs", "eta",
               "expires", "retries", "worker", "result", "exception", "timestamp",
               "runtime", "traceback", "exchange", "routing_key", "clock", "client",
               "root_id", "parent_id", "children")  # fmt: skip
    #: Fields an event of these states always sets, even when it arrives late.
    merge_rules = {states.RECEIVED: ("name", "args", "kwargs", "parent_id", "root_id",
                                     "retries", "eta", "expires")}  # fmt: skip
    _info_fields = ("args", "kwargs", "retries", "result", "eta", "runtime", "expires",
                    "exception", "exchange", "routing_key", "root_id", "parent_id")  # fmt: skip

    def __init__(self, uuid: str | None = None, **fields: Any) -> None:
        self.uuid = uuid
        self.state: str = states.PENDING
        self.clock = 0
        self.name = self.received = self.sent = self.started = self.rejected = None
        self.succeeded = self.failed = self.retried = self.revoked = None
        self.args = self.kwargs = self.eta = self.expires = self.retries = None
        self.result = self.exception = self.timestamp = self.runtime = None
        self.traceback = self.exchange = self.routing_key = self.client = None
        self.root_id = self.parent_id = None
        self.worker: Worker | None = None
        self.children: set[str] = set()
        self.cluster_state: State | None = None  # the State that holds it (parent, root)
        self.__dict__.update(fields)

    def event(self, type_: str, timestamp: float | None = None,
              local_received: float | None = None, fields: Mapping[str, Any] | None = None,
              ) -> None:  # fmt: skip
        """Apply a task event (``type_`` without ``task-``)."""
        fields = dict(fields or {})
        state = TASK_EVENT_TO_STATE.get(type_)
        if state is not None:
            setattr(self, type_, timestamp)
        else:
            state = type_.upper()  # a custom event names a custom state
        retrying = states.RETRY in (state, self.state)
        if not retrying and precedence(state) > precedence(self.state):
            # It happened before the state we hold (it arrived late): fill fields only.
            keep = self.merge_rules.get(state, ())
            fields = {key: value for key, value in fields.items() if key in keep}
        else:
            fields["state"] = state
            fields["timestamp"] = timestamp
        for key in ("type", "hostname", "uuid", "local_received", "utcoffset", "pid"):
            fields.pop(key, None)
        self.__dict__.update(fields)

    @property
    def id(self) -> str | None:
        return self.uuid

    @property
    def ready(self) -> bool:
        return self.state in states.READY_STATES

    @property
    def parent(self) -> Task | None:
        """The task that sent this one, when the state has it."""
        state = self.cluster_state
        return None if state is None or not self.parent_id else state.tasks.get(self.parent_id)

    @property
    def root(self) -> Task | None:
        """The first task of its workflow, when the state has it."""
        state = self.cluster_state
        return None if state is None or not self.root_id else state.tasks.get(self.root_id)

    @property
    def origin(self) -> str | None:
        return self.client if self.worker is None else self.worker.id

    def info(self, fields: Any = None, extra: Any = ()) -> dict[str, Any]:
        """The fields worth showing that are set (Celery's ``Task.info``)."""
        keys = list(self._info_fields if fields is None else fields) + list(extra)
        return {key: getattr(self, key) for key in keys if getattr(self, key, None) is not None}

    def as_dict(self) -> dict[str, Any]:
        data = {key: getattr(self, key) for key in self._fields}
        data["worker"] = self.worker.hostname if self.worker is not None else None
        data["children"] = sorted(self.children)
        return data

    def __repr__(self) -> str:
        return f"<Task: {self.name}({self.uuid}) {self.state} clock:{self.clock}>"


class _Bounded(OrderedDict[str, Any]):
    """A dict that forgets its least recently added entries beyond ``limit``."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        while len(self) > self.limit:
            self.popitem(last=False)


_Worker = Worker
_Task = Task


class State:
    """Workers and tasks from the events applied with ``event``; at most
    ``max_workers_in_memory`` workers and ``max_tasks_in_memory`` tasks (oldest dropped)."""

    Worker: type[_Worker] = _Worker  # (subclass State and set these to extend them)
    Task: type[_Task] = _Task

    def __init__(self, callback: Callable[[State, dict[str, Any]], None] | None = None,
                 max_workers_in_memory: int = 5000, max_tasks_in_memory: int = 10000,
                 on_node_join: Callable[[_Worker], None] | None = None,
                 on_node_leave: Callable[[_Worker], None] | None = None) -> None:  # fmt: skip
        self.event_callback = callback
        self.max_workers_in_memory = max_workers_in_memory
        self.max_tasks_in_memory = max_tasks_in_memory
        self.on_node_join, self.on_node_leave = on_node_join, on_node_leave
        self.workers: _Bounded = _Bounded(max_workers_in_memory)
        self.tasks: _Bounded = _Bounded(max_tasks_in_memory)
        self.event_count = 0
        self.task_count = 0  # tasks received
        self._types: set[str] = set()
        self._mutex = threading.RLock()

    # -- applying events ------------------------------------------------------------------
    def event(self, event: dict[str, Any]) -> tuple[Any, bool]:
        """Apply one event; ``(worker or task, created)``, or ``(None, False)`` for an
        event of another group (a custom one without a task uuid)."""
        with self._mutex:
            return self._event(event)

    def _event(self, event: dict[str, Any]) -> tuple[Any, bool]:
        self.event_count += 1
        if self.event_callback is not None:
            self.event_callback(self, event)
        group, _, subject = str(event.get("type", "")).partition("-")
        if group == "worker":
            return self._worker_event(subject, event)
        if group == "task" or (event.get("uuid") and group != "worker"):
            if group != "task":  # a custom event sent from a task: its own state
                subject = str(event["type"])
            return self._task_event(subject, event)
        return None, False

    def _worker_event(self, subject: str, event: dict[str, Any]) -> tuple[Any, bool]:
        hostname = event.get("hostname")
        if not hostname:
            return None, False
        worker = self.workers.get(hostname)
        created = worker is None
        if worker is None:
            worker = self.workers[hostname] = self.Worker(hostname)
        received = event.get("local_received") or time.time()
        worker.event(subject, event.get("timestamp"), received, event)
        if self.on_node_join is not None and (created or subject == "online"):
            self.on_node_join(worker)
        if self.on_node_leave is not None and subject == "offline":
            self.on_node_leave(worker)
        return worker, created

    def _task_event(self, subject: str, event: dict[str, Any]) -> tuple[Any, bool]:
        uuid = str(event["uuid"])
        task = self.tasks.get(uuid)
        created = task is None
        if task is None:
            task = self.tasks[uuid] = self.Task(uuid)
            task.cluster_state = self
        hostname = event.get("hostname")
        if subject == "sent":  # sent by a client, not a worker
            task.client = hostname
        elif hostname:
            worker = self.workers.get(hostname)
            if worker is None:
                worker = self.workers[hostname] = self.Worker(hostname)
            task.worker = worker
        if subject == "received":
            self.task_count += 1
        task.event(subject, event.get("timestamp"), event.get("local_received"), event)
        if task.name:
            self._types.add(task.name)
        if task.parent_id and task.parent_id in self.tasks:
            self.tasks[task.parent_id].children.add(uuid)
        return task, created

    # -- reading --------------------------------------------------------------------------
    def alive_workers(self) -> list[_Worker]:
        """The workers whose last heartbeat has not expired."""
        with self._mutex:
            return [worker for worker in self.workers.values() if worker.alive]

    def itertasks(self, limit: int | None = None) -> Iterator[tuple[str, _Task]]:
        with self._mutex:
            items = list(self.tasks.items())
        yield from items[:limit] if limit else items

    def tasks_held_by(self, hostname: str) -> list[_Task]:
        """Tasks received or started on ``hostname`` and not finished: for a worker gone
        offline, the calls the broker will hand to another worker (see
        ``Worker.held_until``)."""
        unfinished = (states.RECEIVED, states.STARTED)
        return [
            task for task in self.tasks.values()
            if task.state in unfinished and task.worker is not None
            and task.worker.hostname == hostname
        ]  # fmt: skip

    def tasks_by_time(self, limit: int | None = None,
                      reverse: bool = True) -> Iterator[tuple[str, _Task]]:  # fmt: skip
        """``(uuid, task)`` by the time of each task's latest event (newest first unless
        ``reverse=False``), ordered by (timestamp, clock)."""
        with self._mutex:
            tasks = list(self.tasks.items())
        key = _order_key
        ordered = (
            heapq.nlargest(limit, tasks, key=key) if limit and reverse
            else heapq.nsmallest(limit, tasks, key=key) if limit
            else sorted(tasks, key=key, reverse=reverse)
        )  # fmt: skip
        yield from ordered

    tasks_by_timestamp = tasks_by_time

    @property
    def tasks_by_type(self) -> _Index:
        """``state.tasks_by_type(name, limit=None, reverse=True)``: ``(uuid, task)`` by
        time; ``state.tasks_by_type[name]``: the set of those tasks (as Celery's)."""
        return _Index(self, lambda task, name: task.name == name)

    @property
    def tasks_by_worker(self) -> _Index:
        """The same by the worker's node name."""
        return _Index(
            self, lambda task, host: task.worker is not None and task.worker.hostname == host
        )

    def task_types(self) -> list[str]:
        return sorted(self._types)

    def get_or_create_worker(self, hostname: str, **fields: Any) -> tuple[_Worker, bool]:
        with self._mutex:
            worker = self.workers.get(hostname)
            if worker is not None:
                worker.update(fields)
                return worker, False
            worker = self.workers[hostname] = self.Worker(hostname, **fields)
            return worker, True

    def get_or_create_task(self, uuid: str) -> tuple[_Task, bool]:
        with self._mutex:
            task = self.tasks.get(uuid)
            if task is not None:
                return task, False
            task = self.tasks[uuid] = self.Task(uuid)
            task.cluster_state = self
            return task, True

    def clear_tasks(self, ready: bool = True) -> None:
        """Forget tasks: the finished ones (``ready=True``, the default) or all of them."""
        with self._mutex:
            if not ready:
                self.tasks.clear()
                return
            for uuid in [uuid for uuid, task in self.tasks.items() if task.ready]:
                del self.tasks[uuid]

    def clear(self, ready: bool = True) -> None:
        with self._mutex:
            self.workers.clear()
            self.clear_tasks(ready)
            self.event_count = self.task_count = 0

    def freeze_while(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fun`` with no event applied meanwhile (``clear_after=True`` clears after)."""
        clear_after = kwargs.pop("clear_after", False)
        with self._mutex:
            try:
                return fun(*args, **kwargs)
            finally:
                if clear_after:
                    self.clear()

    def __repr__(self) -> str:
        return f"<State: events={self.event_count} tasks={self.task_count}>"


class _Index:
    """Tasks matching a key, called for an ordered iterator or indexed for a set."""

    def __init__(self, state: State, matches: Callable[[_Task, str], bool]) -> None:
        self.state, self.matches = state, matches

    def __call__(self, key: str, limit: int | None = None,
                 reverse: bool = True) -> Iterator[tuple[str, _Task]]:  # fmt: skip
        found = ((uuid, task) for uuid, task in self.state.tasks_by_time(reverse=reverse)
                 if self.matches(task, key))  # fmt: skip
        return itertools.islice(found, limit)

    def __getitem__(self, key: str) -> set[_Task]:
        return {task for _, task in self.state.itertasks() if self.matches(task, key)}


def _order_key(item: tuple[str, _Task]) -> tuple[float, int]:
    # Timestamp first: workers do not synchronise their logical clocks, so a clock orders
    # only the events of one process (it breaks ties between them).
    task = item[1]
    return (float(task.timestamp or 0.0), int(task.clock or 0))


__all__ = ["HEARTBEAT_EXPIRE_WINDOW", "State", "Task", "Worker", "heartbeat_expires"]
