"""The dashboard's picture of the cluster, fed by the event stream and kept bounded.

Runtime layer (dashboard). A thread follows ``app.events`` (starting with each worker's
latest event) on a broker connection of its own (the app's is left to the pages and their
actions) into an ``events.State`` capped at ``max_tasks`` tasks (the oldest are
forgotten first), each with a timeline of at most ``TIMELINE_MAX`` steps; workers that went
offline are forgotten ``WORKER_TTL`` seconds later; the rates are an hour of fixed buckets
(a minute per queue, for 200 queues at most). So memory stays flat however many tasks
pass. Imports ``events`` and the app's broker factory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from celeriac.app.broker_connection import broker_for_url
from celeriac.events.state import State, Task

logger = logging.getLogger("celeriac.dashboard")

MAX_TASKS = 10_000  # tasks kept in memory (Flower's --max_tasks default)
MAX_WORKERS = 1_000  # workers kept in memory
WORKER_TTL = 600.0  # seconds an offline worker stays listed before it is forgotten
TIMELINE_MAX = 20  # steps kept per task (received, started, retried, ...)
BUCKET = 5  # seconds per rate bucket
BUCKETS = 720  # an hour of buckets
#: The task events counted in the rates, under the state they count for.
COUNTED = {
    "task-received": "received", "task-started": "started", "task-succeeded": "succeeded",
    "task-failed": "failed", "task-retried": "retried", "task-revoked": "revoked",
    "task-rejected": "rejected",
}  # fmt: skip
RATE_NAMES = tuple(dict.fromkeys(COUNTED.values()))
QUEUE_WINDOW = 60  # seconds the queue rates average over
MAX_QUEUES = 200  # queues whose rates are tracked


class TimelineTask(Task):
    """A task that also remembers each step it went through (bounded)."""

    def __init__(self, uuid: str | None = None, **fields: Any) -> None:
        self.timeline: list[dict[str, Any]] = []
        super().__init__(uuid, **fields)

    def event(
        self,
        type_: str,
        timestamp: float | None = None,
        local_received: float | None = None,
        fields: Mapping[str, Any] | None = None,
    ) -> None:
        if len(self.timeline) < TIMELINE_MAX:
            host = (fields or {}).get("hostname")
            self.timeline.append({"step": type_, "at": timestamp, "hostname": host})
        super().event(type_, timestamp, local_received, fields)


class DashboardState(State):
    """``State`` whose tasks keep their timeline."""

    Task = TimelineTask


class Rates:
    """Task events counted per state in ``BUCKET``-second buckets over the last hour."""

    def __init__(self) -> None:
        self._buckets: deque[tuple[int, dict[str, int]]] = deque(maxlen=BUCKETS)
        self._lock = threading.Lock()

    def count(self, name: str, now: float | None = None) -> None:
        start = int((now or time.time()) // BUCKET * BUCKET)
        with self._lock:
            if not self._buckets or self._buckets[-1][0] != start:
                self._buckets.append((start, dict.fromkeys(RATE_NAMES, 0)))
            self._buckets[-1][1][name] += 1

    def series(self, seconds: int = 3600, now: float | None = None) -> dict[str, list[float]]:
        """Per-second rates for each bucket of the last ``seconds`` (empty ones as zero):
        ``{"time": [...], "received": [...], ...}``."""
        end = int((now or time.time()) // BUCKET * BUCKET)
        starts = list(range(end - seconds + BUCKET, end + BUCKET, BUCKET))
        with self._lock:
            kept = {start: dict(counts) for start, counts in self._buckets}
        series: dict[str, list[float]] = {"time": [float(start) for start in starts]}
        for name in RATE_NAMES:
            series[name] = [kept.get(start, {}).get(name, 0) / BUCKET for start in starts]
        return series

    def totals(self, seconds: float, now: float | None = None) -> dict[str, int]:
        """Events per state over the last ``seconds``."""
        since = (now or time.time()) - seconds
        totals = dict.fromkeys(RATE_NAMES, 0)
        with self._lock:
            for start, counts in self._buckets:
                if start + BUCKET > since:
                    for name, value in counts.items():
                        totals[name] += value
        return totals


class QueueRates:
    """Messages into (``task-sent``) and out of (``task-received``) each queue, per second
    over the last ``QUEUE_WINDOW`` seconds; at most ``MAX_QUEUES`` queues are tracked."""

    def __init__(self) -> None:
        self._counts: dict[str, deque[tuple[int, int, int]]] = {}
        self._lock = threading.Lock()

    def count(self, queue: str, into: bool, now: float | None = None) -> None:
        start = int((now or time.time()) // BUCKET * BUCKET)
        with self._lock:
            buckets = self._counts.get(queue)
            if buckets is None:
                if len(self._counts) >= MAX_QUEUES:
                    return
                buckets = self._counts[queue] = deque(maxlen=QUEUE_WINDOW // BUCKET + 1)
            if not buckets or buckets[-1][0] != start:
                buckets.append((start, 0, 0))
            _, inn, out = buckets[-1]
            buckets[-1] = (start, inn + into, out + (not into))

    def rates(self, queue: str, now: float | None = None) -> tuple[float, float]:
        """``(in, out)`` per second over the last ``QUEUE_WINDOW`` seconds."""
        since = (now or time.time()) - QUEUE_WINDOW
        with self._lock:
            kept = [item for item in self._counts.get(queue, ()) if item[0] + BUCKET > since]
        return (round(sum(item[1] for item in kept) / QUEUE_WINDOW, 3),
                round(sum(item[2] for item in kept) / QUEUE_WINDOW, 3))  # fmt: skip


class Monitor:
    """Follows the event stream of ``app`` on a thread of its own until ``close``."""

    def __init__(self, app: Any, max_tasks: int = MAX_TASKS,
                 worker_ttl: float = WORKER_TTL) -> None:  # fmt: skip
        if max_tasks < 1:
            raise ValueError(f"max_tasks must be at least 1, not {max_tasks!r}")
        self.app = app
        self.worker_ttl = worker_ttl
        self.state = DashboardState(
            max_tasks_in_memory=max_tasks, max_workers_in_memory=MAX_WORKERS
        )
        self.rates = Rates()
        self.queue_rates = QueueRates()
        self.broker = _own_broker(app)
        self.started_at = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread = threading.Thread(
            target=self._run, name="celeriac-dashboard-events", daemon=True
        )

    def start(self) -> Monitor:
        self._thread.start()
        return self

    def apply(self, event: dict[str, Any]) -> None:
        """One event: counted in the rates and applied to the state."""
        kind = str(event.get("type"))
        counted = COUNTED.get(kind)
        if counted is not None:
            self.rates.count(counted, event.get("local_received"))
        if kind in ("task-sent", "task-received"):
            queue = event.get("queue") or event.get("routing_key")
            if queue:
                self.queue_rates.count(str(queue), kind == "task-sent", event.get("local_received"))
        self.state.event(event)
        if str(event.get("type")) == "worker-offline":
            self.forget_workers()

    def forget_workers(self, now: float | None = None) -> None:
        """Drop workers offline for longer than ``worker_ttl`` seconds."""
        now = now or time.time()

        def stale() -> list[str]:
            return [
                name for name, worker in self.state.workers.items()
                if not worker.alive and _last_seen(worker) < now - self.worker_ttl
            ]  # fmt: skip

        def drop() -> None:
            for name in stale():
                del self.state.workers[name]

        self.state.freeze_while(drop)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._task = loop.create_task(self._follow())
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("the dashboard stopped following events")
        finally:
            loop.run_until_complete(self.broker.close_async())
            loop.close()
            if self.broker is not self.app.broker:
                self.broker.close()

    async def _follow(self) -> None:
        receiver = self.app.events.Receiver(self.broker, handlers={"*": self._apply})
        async for _ in receiver.aitercapture(wakeup=True):
            pass

    def _apply(self, event: dict[str, Any]) -> None:
        try:
            self.apply(event)
        except Exception:  # one odd event never stops the feed
            logger.exception("could not apply event %r", event.get("type"))

    def close(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        if self._thread.is_alive():
            self._thread.join(10)


def _own_broker(app: Any) -> Any:
    """A connection of the monitor's own to the app's broker (the URL the app resolved,
    so the embedded Redis too); an in-process broker is the app's own, being one."""
    url = getattr(app.broker, "url", None)
    if not url:
        return app.broker
    return broker_for_url(app.conf, str(url))


def _last_seen(worker: Any) -> float:
    beats = worker.heartbeats
    return float(beats[-1]) if beats else float(worker.offline_at or 0.0)


__all__ = ["BUCKET", "MAX_TASKS", "WORKER_TTL", "DashboardState", "Monitor", "Rates"]
