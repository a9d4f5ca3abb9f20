"""A worker's own ``/metrics``: its tasks as the consumer sees them, its slots, its queues.

Runtime layer, above the worker. ``WorkerMetrics`` is a task listener: the consumer tells
it of each task in the worker's main process, so under prefork the children's tasks are
counted in the parent, where the endpoint is. Queue depths and dead letters are read from
the broker at scrape time (``broker_state``), from the HTTP server's thread.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from celeriac.metrics import names
from celeriac.metrics.broker_state import BrokerStateCollector, held_by_queue
from celeriac.metrics.server import MetricsServer

if TYPE_CHECKING:
    from celeriac.trace import Outcome
    from celeriac.worker.execution import HeldJob
    from celeriac.worker.worker import Worker


class WorkerMetrics:
    """The task counters and histograms of one worker (a ``TaskListener``)."""

    def __init__(self, app: Any, queues: Any, registry: CollectorRegistry) -> None:
        self.app = app
        self.queues = queues  # () -> the queues this worker consumes
        self._started: dict[str, float] = {}  # task id -> when it started (monotonic)
        self.tasks = Counter(
            names.TASKS_TOTAL, "Tasks that ended, by final state",
            ["task", "queue", "state"], registry=registry,
        )  # fmt: skip
        self.runtime = Histogram(
            names.TASK_RUNTIME, "Seconds a task's body ran", ["task", "queue"],
            buckets=names.RUNTIME_BUCKETS, registry=registry,
        )  # fmt: skip
        self.queue_wait = Histogram(
            names.TASK_QUEUE_WAIT,
            "Seconds from when a task was due (sent, or its eta) until it started",
            ["task", "queue"], buckets=names.WAIT_BUCKETS, registry=registry,
        )  # fmt: skip

    def labels(self, job: HeldJob) -> tuple[str, str]:
        task = names.bounded(str(job.task.name), self.app.tasks, names.UNREGISTERED)
        return task, names.bounded(job.delivery.queue, self.queues(), names.OTHER_QUEUE)

    # -- TaskListener ----------------------------------------------------------------------
    def task_received(self, job: HeldJob) -> None:
        return None

    def task_started(self, job: HeldJob) -> None:
        self._started[job.id] = time.monotonic()
        wait = queue_wait(job.request.headers, job.request.eta, time.time())
        if wait is not None:
            self.queue_wait.labels(*self.labels(job)).observe(wait)

    def task_finished(self, job: HeldJob, outcome: Outcome) -> None:
        task, queue = self.labels(job)
        state = names.FINAL_STATES.get(outcome.state, outcome.state.lower())
        self.tasks.labels(task, queue, state).inc()
        if self._started.pop(job.id, None) is not None:  # it ran (not revoked before)
            self.runtime.labels(task, queue).observe(max(outcome.runtime, 0.0))


def queue_wait(headers: dict[str, Any], eta: str | None, now: float) -> float | None:
    """Seconds from when the message was due (``sent_at``, or its eta if later) until
    ``now``; None for a message that does not say when it was sent (another producer)."""
    sent = headers.get("sent_at")
    due = float(sent) if isinstance(sent, (int, float)) else None
    if eta:
        try:
            when = dt.datetime.fromisoformat(eta)
        except ValueError:
            when = None
        if when is not None:
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            due = max(due or 0.0, when.timestamp())
    return None if due is None else max(0.0, now - due)


class WorkerStateCollector(Collector):
    """``celeriac_worker_up`` and ``celeriac_worker_slots``, read from the worker."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[GaugeMetricFamily]:
        worker = self.worker
        up = GaugeMetricFamily(names.WORKER_UP, "1 while the worker runs", labels=["worker"])
        up.add_metric([worker.hostname], 1)
        slots = GaugeMetricFamily(
            names.WORKER_SLOTS, "Pool slots, busy running a task or idle", labels=["state"]
        )
        busy = len(worker.consumer.running) if worker.consumer is not None else 0
        slots.add_metric(["busy"], busy)
        slots.add_metric(["idle"], max(worker.concurrency - busy, 0))
        yield up
        yield slots


def _held(worker: Worker) -> dict[str, int]:
    if worker.consumer is None:
        return {}
    return held_by_queue(list(worker.consumer.held.values()))


def serve_worker_metrics(worker: Worker, port: int, address: str = "0.0.0.0") -> MetricsServer:
    """Count ``worker``'s tasks and serve them, with its state and its queues', on ``port``."""
    registry = CollectorRegistry()
    metrics = WorkerMetrics(worker.app, lambda: worker.queues, registry)
    worker.listeners.add(metrics)
    registry.register(WorkerStateCollector(worker))
    # The worker's own broker: its admin calls may come from another thread (the server's).
    broker = worker.app.broker
    registry.register(BrokerStateCollector(broker, lambda: worker.queues, lambda: _held(worker)))
    return MetricsServer(registry, port, address).start()


__all__ = ["WorkerMetrics", "WorkerStateCollector", "queue_wait", "serve_worker_metrics"]
