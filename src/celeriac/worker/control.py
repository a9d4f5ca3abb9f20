"""The worker's side of remote control: ``WorkerControl`` is the ``ControlState`` the
commands act on, and Celery's decorators live here too
(``from celeriac.worker.control import control_command, inspect_command``).

Runtime layer: imports ``celeriac.control`` (commands, mailbox) and the worker's own
modules, never the ``Worker`` class (it hands itself in). It listens to the consumer's
task reports (``worker.listeners``) for what ``inspect`` shows: start times, the tasks
waiting for a slot and the count per task name (``stats``' ``total``).
"""

from __future__ import annotations

import collections
import importlib
import logging
import os
import resource
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac.brokers.base import Revocation
from celeriac.control.registry import Panel, control_command, inspect_command, nok, ok
from celeriac.worker.banner import mask_password
from celeriac.worker.connection import off_loop
from celeriac.worker.memory import MemorySamples

logger = logging.getLogger("celeriac.worker")

if TYPE_CHECKING:
    from celeriac.trace import Outcome
    from celeriac.worker.execution import HeldJob
    from celeriac.worker.worker import Worker


class WorkerControl:
    """What one worker shows and lets remote control change (``ControlState``)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.app = worker.app
        self.hostname = worker.hostname
        self.started = time.monotonic()
        self.total: collections.Counter[str] = collections.Counter()  # tasks started, by name
        self._waiting: dict[str, HeldJob] = {}  # received, no slot yet
        # Tasks that ended REVOKED here lately: a terminate's reply may be computed after
        # the revocation (announced on its own topic) already stopped the task.
        self._revoked_here: collections.deque[str] = collections.deque(maxlen=1000)
        self.memory = MemorySamples()  # inspect memsample / memdump

    @property
    def consumer(self) -> Any:
        return self.worker.consumer

    # -- the consumer's task reports (a TaskListener) -------------------------------------
    def task_received(self, job: HeldJob) -> None:
        self._waiting[job.id] = job

    def task_started(self, job: HeldJob) -> None:
        self._waiting.pop(job.id, None)
        self.total[str(job.task.name)] += 1

    def task_finished(self, job: HeldJob, outcome: Outcome) -> None:
        self._waiting.pop(job.id, None)
        if outcome.state == states.REVOKED:
            self._revoked_here.append(job.id)

    # -- inspect ---------------------------------------------------------------------------
    def active(self) -> list[dict[str, Any]]:
        consumer = self.consumer
        if consumer is None:
            return []
        return [self._info(job, consumer) for job in list(consumer.running.values())]

    def reserved(self) -> list[dict[str, Any]]:
        consumer = self.consumer
        running = consumer.running if consumer is not None else {}
        return [self._info(job, None) for job in self._waiting.values() if job.id not in running]

    def _info(self, job: HeldJob, consumer: Any) -> dict[str, Any]:
        """Celery's request info: what ``inspect active``/``reserved`` list per task."""
        request, started = job.request, consumer is not None
        pool = self.worker.pool
        return {
            "id": job.id,
            "name": job.task.name,
            "args": list(request.args or ()),
            "kwargs": dict(request.kwargs or {}),
            "type": job.task.name,
            "hostname": request.hostname or self.hostname,
            "time_start": consumer.started_at.get(job.id) if started else None,
            "acknowledged": started and not job.task.resolve("acks_late"),
            "delivery_info": dict(request.delivery_info or {}),
            "worker_pid": pool.job_pid(job.id) if started and pool is not None else None,
        }

    def revoked(self) -> list[str]:
        revocations = self.worker.revocations
        return revocations.ids() if revocations is not None else []

    def running_ids(self, task_ids: Sequence[str]) -> list[str]:
        """Of ``task_ids``, those running here, or stopped here by a revoke just now."""
        running = self.consumer.running if self.consumer is not None else {}
        stopped = set(self._revoked_here)
        return [task_id for task_id in task_ids if task_id in running or task_id in stopped]

    def stats(self) -> dict[str, Any]:
        worker, pool = self.worker, self.worker.pool
        info = pool.info() if pool is not None else {}
        usage = resource.getrusage(resource.RUSAGE_SELF)
        url = getattr(self.app.broker, "url", None) or self.app.conf.broker_url or "memory://"
        return {
            **worker.blueprint.info(worker),  # the user bootsteps' own; ours win a clash
            "broker": {"url": mask_password(str(url)), "transport": str(url).split(":", 1)[0]},
            "pid": os.getpid(),
            "pool": {
                "implementation": info.get("pool", worker.pool_name),
                "max-concurrency": info.get("concurrency", worker.concurrency),
                "processes": info.get("processes", [os.getpid()]),
                "max-tasks-per-child": info.get("max_tasks_per_child"),
                "max-memory-per-child": info.get("max_memory_per_child"),
            },
            "prefetch_count": self.consumer.prefetch if self.consumer is not None else 0,
            "rusage": {
                "utime": usage.ru_utime,
                "stime": usage.ru_stime,
                "maxrss": usage.ru_maxrss,
                "minflt": usage.ru_minflt,
                "majflt": usage.ru_majflt,
                "nvcsw": usage.ru_nvcsw,
                "nivcsw": usage.ru_nivcsw,
            },
            "total": dict(self.total),
            "uptime": round(time.monotonic() - self.started),
            **self._autoscaler_info(),
        }

    def _autoscaler_info(self) -> dict[str, Any]:
        """Celery's ``autoscaler`` entry, only on a worker that autoscales."""
        scaler = self.worker.autoscaler
        return {"autoscaler": scaler.info()} if scaler is not None else {}

    def memsample(self) -> str:
        return self.memory.sample()

    def memdump(self, samples: int) -> str:
        return self.memory.dump(samples)

    def queues(self) -> list[str]:
        return list(self.consumer.queues) if self.consumer is not None else []

    # -- control ---------------------------------------------------------------------------
    async def revoke(self, task_ids: Sequence[str], terminate: bool, signal: str) -> None:
        """Recorded on the broker for every worker; a terminate only for the tasks running
        here (the command reached this worker, as in Celery)."""
        keys, ttl = list(task_ids), float(self.app.conf.worker_revoke_expires)
        broker = self.app.broker
        await off_loop(lambda: broker.revoke(keys, ttl, terminate=False, signal=signal))
        revocations = self.worker.revocations
        if revocations is not None:
            ends = dict.fromkeys(keys, time.time() + ttl)
            revocations.apply(Revocation(ends, terminate=terminate, signal=signal))

    @property
    def autoscaling(self) -> bool:
        return self.worker.autoscaler is not None

    def autoscale(self, max: int | None, min: int | None) -> tuple[int, int]:
        scaler = self.worker.autoscaler
        if scaler is None:
            raise ValueError("Autoscale not enabled: start the worker with --autoscale=MAX,MIN")
        return scaler.update(max, min)

    def resize_pool(self, delta: int) -> int:
        worker, pool = self.worker, self.worker.pool
        if pool is None or self.consumer is None:
            raise RuntimeError("the worker is not running yet: its pool cannot be resized")
        size = pool.concurrency + delta
        pool.resize(size)
        worker.concurrency = size
        worker.prefetch = size * worker.prefetch_multiplier
        self.consumer.resize(size, worker.prefetch)
        return size

    def restart_pool(self, modules: Sequence[str] | None, reload: bool) -> None:
        """``pool_restart``: import the ``modules`` not imported yet (None: those of the
        registered tasks), reload the others when ``reload``, then replace the pool."""
        pool = self.worker.pool
        if pool is None:
            raise RuntimeError("the worker is not running yet: its pool cannot be restarted")
        if modules is None:
            modules = sorted({str(task.__module__) for task in self.app.tasks.values()})
        for name in modules:
            _import_or_reload(name, reload)
        pool.restart()

    def set_rate_limit(self, task_name: str, rate: str | float | None) -> None:
        if self.consumer is not None:
            self.consumer.rate_limits.set(task_name, rate)

    def add_queue(self, queue: str) -> bool:
        if self.consumer is None or queue in self.consumer.queues:
            return False
        self.consumer.queues = self.worker.queues = [*self.consumer.queues, queue]
        return True

    def cancel_queue(self, queue: str) -> bool:
        if self.consumer is None or queue not in self.consumer.queues:
            return False
        kept = [name for name in self.consumer.queues if name != queue]
        self.consumer.queues = self.worker.queues = kept
        return True

    def set_task_events(self, enabled: bool) -> bool:
        """Through the worker's event dispatcher (worker events go on either way)."""
        self.worker.send_events = enabled
        events = self.worker.events
        if events is None:  # not started yet: the setting is read when events start
            return True
        dispatcher = events.dispatcher
        return dispatcher.enable_task_events() if enabled else dispatcher.disable_task_events()

    def heartbeat(self) -> bool:
        events = self.worker.events
        if events is None:
            return False
        events.beat()
        return True

    def shutdown(self) -> None:
        self.worker.stop("warm")


def _import_or_reload(name: str, reload: bool) -> None:
    """As Celery: a module not imported yet is imported; one imported already is reloaded
    only with ``reload`` (its tasks keep their registered objects; what they call from
    the module is the new code)."""
    module = sys.modules.get(name)
    if module is None:
        logger.debug("importing module %s", name)
        importlib.import_module(name)
    elif reload:
        logger.debug("reloading module %s", name)
        importlib.reload(module)


__all__ = ["Panel", "WorkerControl", "control_command", "inspect_command", "nok", "ok"]
