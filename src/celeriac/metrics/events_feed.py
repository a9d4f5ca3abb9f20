"""The exporter's metrics from events: tasks that ended, their runtimes, workers up.

Runtime layer. A thread follows the app's event stream (``app.events.Receiver``, starting
with each worker's latest event) and applies every event to an ``events.State``; final task
events count ``celeriac_tasks_total`` and observe ``celeriac_task_runtime_seconds``.
Worker heartbeats are sent whatever ``-E`` says, so ``celeriac_worker_up`` and
``celeriac_worker_slots`` need nothing more; task counts need workers started with ``-E``.
A task's queue is known from its ``task-sent`` event (``task_send_sent_event``), else it is
counted under the ``other`` queue label.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from celeriac.events.state import State
from celeriac.metrics import names

logger = logging.getLogger("celeriac.metrics")
#: Final task events and the ``state`` label each counts under.
FINAL_EVENTS = {
    "task-succeeded": "success", "task-failed": "failure", "task-retried": "retry",
    "task-revoked": "revoked", "task-rejected": "rejected",
}  # fmt: skip
WORKER_FORGET = 600.0  # seconds after which an offline worker's series is dropped


class EventMetrics(Collector):
    """Counters fed by events; ``collect`` adds worker liveness and slots from the State."""

    def __init__(
        self, app: Any, registry: CollectorRegistry, queues: Callable[[], Sequence[str]]
    ) -> None:
        self.app, self.queues = app, queues
        self.state = State(max_tasks_in_memory=20_000)
        self.tasks = Counter(
            names.TASKS_TOTAL, "Tasks that ended, by final state",
            ["task", "queue", "state"], registry=registry,
        )  # fmt: skip
        self.runtime = Histogram(
            names.TASK_RUNTIME, "Seconds a task's body ran", ["task", "queue"],
            buckets=names.RUNTIME_BUCKETS, registry=registry,
        )  # fmt: skip
        registry.register(self)

    def apply(self, event: dict[str, Any]) -> None:
        """One event: into the State, and counted when it ends a task."""
        subject, _ = self.state.event(event)
        label = FINAL_EVENTS.get(str(event.get("type")))
        if label is None or subject is None:
            return
        task = names.bounded(str(subject.name), self.app.tasks, names.UNREGISTERED)
        queue = names.bounded(str(subject.routing_key), self.queues(), names.OTHER_QUEUE)
        self.tasks.labels(task, queue, label).inc()
        runtime = event.get("runtime")
        if label == "success" and isinstance(runtime, (int, float)):
            self.runtime.labels(task, queue).observe(max(float(runtime), 0.0))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily(
            names.WORKER_UP, "1 while the worker's heartbeats arrive", labels=["worker"]
        )
        slots = GaugeMetricFamily(
            names.WORKER_SLOTS, "Pool slots of the live workers, busy or idle", labels=["state"]
        )
        busy = idle = 0
        now = time.time()
        # The receiver thread applies events meanwhile: copy under the State's lock.
        workers = self.state.freeze_while(lambda: list(self.state.workers.values()))
        for worker in workers:
            if worker.offline_at is not None and now - worker.offline_at > WORKER_FORGET:
                continue
            alive = worker.alive
            up.add_metric([str(worker.hostname)], 1 if alive else 0)
            if alive:
                active, size = worker.active or 0, worker.pool_size or 0
                busy += active
                idle += max(size - active, 0)
        slots.add_metric(["busy"], busy)
        slots.add_metric(["idle"], idle)
        yield up
        yield slots


class EventFeed:
    """Follows the event stream on a thread of its own until ``close``."""

    def __init__(self, app: Any, metrics: EventMetrics) -> None:
        self.app, self.metrics = app, metrics
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-events-feed", daemon=True)

    def start(self) -> EventFeed:
        self._thread.start()
        self._ready.wait(10)
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            self._task = loop.create_task(self._follow())
            self._ready.set()
            loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            loop.close()

    async def _follow(self) -> None:
        receiver = self.app.events.Receiver(handlers={"*": self._apply})
        async for _ in receiver.aitercapture(wakeup=True):
            pass

    def _apply(self, event: dict[str, Any]) -> None:
        try:
            self.metrics.apply(event)
        except Exception:  # one odd event never stops the feed
            logger.exception("could not count event %r", event.get("type"))

    def close(self) -> None:
        loop, task = self._loop, self._task
        if loop is not None and task is not None and not loop.is_closed():
            loop.call_soon_threadsafe(task.cancel)
        self._thread.join(10)


__all__ = ["FINAL_EVENTS", "EventFeed", "EventMetrics"]
