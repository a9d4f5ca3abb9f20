"""What runs under fault: a system under test (its workers and a sender) on a broker of the
harness's (``brokers.py``). It is a protocol, so another task queue plugs in; this module
has celeriac."""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import psutil  # type: ignore[import-untyped]

from celeriac.messages import Message
from tests.chaos.brokers import BrokerUnderTest
from tests.chaos.chaos_app import ASYNC_TASK, TASK, extra_settings, make_app, transport_options
from tests.integration.workers import ROOT, WorkerProcess


class Worker(Protocol):
    pid: int

    def children(self) -> list[int]: ...
    def alive(self) -> bool: ...
    def stop(self) -> None: ...
    def kill_group(self) -> None: ...
    def log(self) -> str: ...


class SystemUnderTest(Protocol):
    name: str
    prefix: str  # its keys' prefix; its tasks record runs at "<prefix>:runs" in the store
    keys: bool  # whether it takes idempotency keys on this broker

    def start_worker(self, index: int, wait: bool = True) -> Worker: ...
    def send(self, task_id: str, seconds: float, countdown: float | None,
             idempotency_key: str | None) -> None: ...  # fmt: skip
    def dead_letters(self) -> dict[str, str]: ...  # task id -> reason
    def wait_ran(self, task_id: str, timeout: float) -> bool: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class Setup:
    """What a system is started with."""

    broker: BrokerUnderTest
    broker_url: str  # for the sender, straight to the broker
    worker_broker_url: str  # for the workers, through the harness's proxy
    records_url: str  # the records store (and result backend), never under fault
    pool: str
    lease: float


MakeSystem = Callable[[Setup], SystemUnderTest]


class CeleriacWorker:
    """``python -m celeriac -A tests.chaos.chaos_app worker`` in a process group of its own."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.pid = process.process.pid

    def children(self) -> list[int]:
        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def alive(self) -> bool:
        return self.process.process.poll() is None

    def log(self) -> str:
        return self.process.text

    def stop(self) -> None:
        self.process.stop(timeout=30)

    def kill_group(self) -> None:
        """Whatever is left of the worker and its children (cleanup, never a fault)."""
        try:
            os.killpg(self.pid, signal.SIGCONT)
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.stop(timeout=10)


# Two workers of each: prefork's children are processes on two cores; solo runs one task
# at a time.
CONCURRENCY = {"threads": "4", "prefork": "2", "solo": "1", "asyncio": "4"}


class Celeriac:
    """celeriac workers from the CLI, and a sender in this process."""

    name = "celeriac"

    def __init__(self, setup: Setup) -> None:
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}"
        self.pool = setup.pool
        self.concurrency = CONCURRENCY[setup.pool]
        self.task = ASYNC_TASK if setup.pool == "asyncio" else TASK
        options = transport_options(
            setup.broker.kind, self.prefix, setup.lease,
            setup.broker.options.get("queue_type", "classic"),
        )  # fmt: skip
        self.keys = setup.broker.kind == "redis"
        settings = extra_settings(setup.broker.kind, setup.broker.options.get("delay_queue_type"))
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            "CHAOS_BROKER": setup.worker_broker_url, "CHAOS_RECORDS": setup.records_url,
            "CHAOS_PREFIX": self.prefix, "CHAOS_OPTIONS": json.dumps(options),
            "CHAOS_SETTINGS": json.dumps(settings),
        }  # fmt: skip
        self.app = make_app(setup.broker_url, setup.records_url, self.prefix, options, settings)

    def start_worker(self, index: int, wait: bool = True) -> CeleriacWorker:
        args = ("-P", self.pool, "-c", self.concurrency, "-n", f"w{index}@%h")
        kind = WorkerProcess.started if wait else WorkerProcess
        process = kind(ROOT, self.env, *args, app="tests.chaos.chaos_app", own_group=True)
        return CeleriacWorker(process)

    def send(self, task_id: str, seconds: float, countdown: float | None,
             idempotency_key: str | None) -> None:  # fmt: skip
        options = {"task_id": task_id, "countdown": countdown}
        if idempotency_key is not None:
            options["idempotency_key"] = idempotency_key
        self.app.tasks[self.task].apply_async((seconds,), **options)
        # A send counts as confirmed once the broker has it: with RabbitMQ's pipelined
        # confirms, a publish that failed after the call returned raises here.
        self.app.broker.flush()

    def dead_letters(self) -> dict[str, str]:
        letters = self.app.broker.dead_letters("celery", limit=10_000)
        return {Message.decode(d.payload).id: d.reason.value for d in letters}

    def wait_ran(self, task_id: str, timeout: float) -> bool:
        """Wait for the task's result (the records store keeps results)."""
        try:
            self.app.AsyncResult(task_id).get(timeout=timeout)
        except Exception:  # not run in time (or not sent): the report shows it
            return False
        return True

    def close(self) -> None:
        self.app.close()
