"""What runs under fault: a broker (its server, restartable) and a system under test (the
workers and a sender). Both are protocols, so another broker or another task queue plugs
in; this module has Redis and celeriac."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path
from typing import Protocol

import psutil  # type: ignore[import-untyped]

from celeriac.messages import Message
from tests.chaos.chaos_app import TASK, make_app
from tests.chaos.servers import RedisServer
from tests.integration.workers import ROOT, WorkerProcess


class BrokerUnderTest(Protocol):
    name: str  # for the report, e.g. "redis (aof everysec)"
    port: int  # where the proxy forwards to

    def url(self, port: int) -> str: ...
    def start(self) -> None: ...
    def restart(self) -> None: ...
    def stop(self) -> None: ...


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

    def start_worker(self, index: int, wait: bool = True) -> Worker: ...
    def send(self, task_id: str, seconds: float, countdown: float | None,
             idempotency_key: str | None) -> None: ...  # fmt: skip
    def dead_letters(self) -> dict[str, str]: ...  # task id -> reason
    def wait_ran(self, task_id: str, timeout: float) -> bool: ...
    def close(self) -> None: ...


class RedisBroker:
    """The broker's own redis-server; ``persistence`` is "aof" (everysec) or "off"."""

    def __init__(self, directory: Path, persistence: str) -> None:
        self.server = RedisServer(directory, persistence)
        self.port = self.server.port
        label = "aof everysec" if persistence == "aof" else "persistence off"
        self.name = f"redis ({label})"
        self.persistence = persistence

    def url(self, port: int) -> str:
        return f"redis://127.0.0.1:{port}/0"

    def start(self) -> None:
        self.server.start()

    def restart(self) -> None:
        self.server.restart()

    def stop(self) -> None:
        self.server.stop()


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


class Celeriac:
    """celeriac workers from the CLI, and a sender in this process."""

    name = "celeriac"

    def __init__(self, broker_url: str, worker_broker_url: str, records_url: str,
                 pool: str, lease: float) -> None:  # fmt: skip
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}"
        self.pool = pool
        self.concurrency = "2" if pool == "prefork" else "4"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
            "PYTHONUNBUFFERED": "1",
            "CHAOS_BROKER": worker_broker_url, "CHAOS_RECORDS": records_url,
            "CHAOS_PREFIX": self.prefix, "CHAOS_LEASE": str(lease),
        }  # fmt: skip
        self.app = make_app(broker_url, records_url, self.prefix, lease)

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
        self.app.tasks[TASK].apply_async((seconds,), **options)

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
