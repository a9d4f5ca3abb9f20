"""A worker's events: task events from the consumer's reports, and its heartbeat.

``WorkerEvents`` is a task listener (``worker.listeners``): the consumer tells it of each
task received, started and finished, on the worker's event loop, and it posts Celery's
task event for each (``task`` group; sent with ``-E``). Its heart posts ``worker-online``,
a ``worker-heartbeat`` every ``interval`` seconds and ``worker-offline`` (``worker``
group; sent whether or not task events are). Everything goes through the dispatcher's
buffered face, so a listener call only builds a dict. Imports ``events`` modules and the
stdlib; the job and outcome are types only here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import traceback as tb
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from celeriac import signals
from celeriac._futures import cancel_and_wait
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.event import SOFTWARE_INFO
from celeriac.messages.validation import parse_iso

if TYPE_CHECKING:
    from celeriac.trace import Outcome
    from celeriac.worker.execution import HeldJob

HEARTBEAT_INTERVAL = 2.0  # seconds, as Celery's


def load_average() -> list[float]:
    """The system's 1, 5 and 15 minute load averages, rounded as Celery's."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:  # not available on this platform
        return [0.0, 0.0, 0.0]


class WorkerEvents:
    """Task events and the heartbeat of one worker, through ``dispatcher``.

    ``active`` counts the tasks running now; ``pool_size`` is the pool's concurrency;
    ``results_are_reprs``: the pool already turned results into their repr (prefork).
    """

    def __init__(
        self,
        dispatcher: EventDispatcher,
        *,
        active: Callable[[], int],
        pool_size: Callable[[], int],
        interval: float = HEARTBEAT_INTERVAL,
        heartbeat: bool = True,
        results_are_reprs: bool = False,
        lease: float | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.lease = lease  # the broker's lease: when a dead worker's messages come back
        self.active, self.pool_size = active, pool_size
        self.interval = interval
        self.heartbeat = heartbeat
        self.results_are_reprs = results_are_reprs
        self.processed = 0  # tasks that ended here (Celery's ``processed``)
        self._heart: asyncio.Task[None] | None = None
        self._running: set[str] = set()  # ids started and not finished (a revoke terminates)

    # -- the heart ------------------------------------------------------------------------
    async def start(self) -> None:
        """Send ``worker-online`` (before the worker reports ready), then follow."""
        if self.heartbeat:
            self.beat("worker-online")
            await self.dispatcher.flush()
        self.dispatcher.start_flushing()
        if self.heartbeat:
            self._heart = asyncio.get_running_loop().create_task(
                self._beat_every(), name="celeriac-heartbeat-events"
            )

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the heart, post ``worker-offline`` and send what is queued."""
        if self._heart is not None:
            await cancel_and_wait(self._heart)
            self._heart = None
            self.beat("worker-offline")
        await self.dispatcher.close(timeout)

    def beat(self, type_: str = "worker-heartbeat") -> None:
        """Post one worker event with the worker's figures (remote control may ask for one)."""
        if signals.heartbeat_sent.has_receivers:
            signals.heartbeat_sent.send(sender=self)
        self.dispatcher.post(type_, {
            "freq": self.interval, "active": self.active(), "processed": self.processed,
            "loadavg": load_average(), "pool_size": self.pool_size(), "lease": self.lease,
            **SOFTWARE_INFO,
        })  # fmt: skip

    async def _beat_every(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.beat()

    # -- the task listener ----------------------------------------------------------------
    def task_received(self, job: HeldJob) -> None:
        if not job.task.send_events or not self.dispatcher.sends("task-received"):
            return
        request = job.request
        headers = request.headers
        self.dispatcher.post("task-received", {
            "uuid": request.id, "name": job.task.name,
            "args": headers.get("argsrepr") or repr(request.args),
            "kwargs": headers.get("kwargsrepr") or repr(request.kwargs),
            "root_id": request.root_id, "parent_id": request.parent_id,
            "retries": request.retries, "eta": request.eta, "expires": request.expires,
            # Ours: the queue it came from (Celery's task-sent has it; a receiver that
            # missed that event, or a task sent without it, still knows the queue).
            "routing_key": job.delivery.queue,
        })  # fmt: skip

    def task_started(self, job: HeldJob) -> None:
        self._running.add(job.id)
        # An expired task goes to the pool only to be discarded: it does not start.
        if not job.task.send_events or not self.dispatcher.sends("task-started"):
            return
        if not _expired(job.request.expires):
            self.dispatcher.post("task-started", {"uuid": job.request.id})

    def task_finished(self, job: HeldJob, outcome: Outcome) -> None:
        self.processed += 1
        started = job.id in self._running
        self._running.discard(job.id)
        kind = outcome.kind  # (a str enum: compared with its values, without .value)
        if not job.task.send_events or not self.dispatcher.sends("task-"):
            return  # (Task.send_events=False: none of this task's events, as in Celery)
        fields: dict[str, Any] = {"uuid": job.request.id}
        if kind == "success":
            retval = outcome.retval
            text = retval if self.results_are_reprs else repr(retval)
            fields["result"] = _cut(text, job.task.resultrepr_maxsize)
            fields["runtime"] = outcome.runtime
            self.dispatcher.post("task-succeeded", fields)
        elif kind in ("failure", "retry"):
            # A retry names the error that caused it, as Celery's task-retried does.
            reason = getattr(outcome.retry, "exc", None) if kind == "retry" else None
            fields["exception"] = repr(reason or outcome.exc)
            fields["traceback"] = outcome.traceback or _traceback_of(outcome.exc)
            self.dispatcher.post("task-failed" if kind == "failure" else "task-retried", fields)
        elif kind == "reject":
            fields["requeue"] = outcome.requeue
            self.dispatcher.post("task-rejected", fields)
        elif outcome.state == "REVOKED":
            expired = _expired(job.request.expires)
            fields.update(terminated=started and not expired, signum=None, expired=expired)
            self.dispatcher.post("task-revoked", fields)

    def sends(self, type_: str) -> bool:
        return self.dispatcher.sends(type_)


def _cut(text: str, limit: int) -> str:
    """At most ``limit`` characters (the task's ``resultrepr_maxsize``), as Celery's."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def _expired(expires: str | None) -> bool:
    if not expires:
        return False
    when = parse_iso(expires)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return dt.datetime.now(dt.timezone.utc) >= when


def _traceback_of(exc: BaseException | None) -> str | None:
    if exc is None or exc.__traceback__ is None:
        return None
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def for_worker(
    app: Any,
    hostname: str,
    *,
    task_events: bool,
    active: Callable[[], int],
    pool_size: Callable[[], int],
    results_are_reprs: bool = False,
    interval: float = HEARTBEAT_INTERVAL,
) -> WorkerEvents:
    """The events of a worker named ``hostname`` of ``app``: worker events always, task
    events when ``task_events`` (``-E``, ``worker_send_task_events``); a heartbeat every
    ``interval`` seconds (``--heartbeat-interval``)."""
    dispatcher = app.events.Dispatcher(
        hostname=hostname, groups=None if task_events else ["worker"]
    )
    app.events.worker_dispatcher = dispatcher  # a task's send_event queues behind ours
    return WorkerEvents(
        dispatcher, active=active, pool_size=pool_size,
        results_are_reprs=results_are_reprs, interval=interval,
        lease=getattr(app.broker, "lease_seconds", None),
    )  # fmt: skip


__all__ = ["HEARTBEAT_INTERVAL", "WorkerEvents", "for_worker", "load_average"]
