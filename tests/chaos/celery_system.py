"""Celery under the same faults: Celery's own workers (``celery -A tests.chaos.celery_project
worker``) and a sender process, both from the Celery virtualenv ``bench/.venvs/celery``
(Celery cannot be imported next to celeriac). ``python -m tests.chaos --system celery``
makes that virtualenv when it is missing; ``prepare`` is that step."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import redis
from bench import venvs

from tests.chaos.chaos_app import extra_settings
from tests.chaos.systems import CONCURRENCY, Setup
from tests.integration.workers import ROOT

VENV = venvs.VENVS_DIR / "celery"
SERIES = "5.7."  # the Celery release the comparison is of
POOLS = ("threads", "prefork", "solo")  # Celery has no asyncio pool
APP = "tests.chaos.celery_project"
# Mingle (syncing revoked ids and clocks with the other workers when the worker connects)
# holds the connection for a second or more without heartbeats; on RabbitMQ, with the
# 1-second heartbeat celeriac's chaos app has too, the broker closes the connection each
# time and the worker never becomes ready. No case needs what mingle syncs.
WORKER_FLAGS = ("--without-mingle",)
SEND_TIMEOUT = 30.0  # a send that has not answered by then counts as failed


def venv_ready() -> bool:
    return (VENV / ".installed").exists()


def _python() -> Path:
    if not venv_ready():
        raise RuntimeError(
            f"no Celery virtualenv at {VENV}: `python -m tests.chaos --system celery` makes "
            "it (pip, from PyPI), as does `python -m bench.venvs celery`"
        )
    return VENV / "bin" / "python"


def installed_versions() -> str:
    """What the Celery virtualenv has, for the report's header; an error unless it is
    Celery 5.7."""
    python = _python()
    modules = ("celery", "kombu", "amqp", "redis")
    script = f"import {', '.join(modules)}; print({', '.join(m + '.__version__' for m in modules)})"
    output = subprocess.run(
        [str(python), "-c", script], capture_output=True, text=True, check=True
    ).stdout
    celery, kombu, amqp, redis_py = output.split()
    if not celery.startswith(SERIES):
        raise RuntimeError(
            f"{VENV} has Celery {celery}; the comparison is of Celery {SERIES}x: "
            f"`{python} -m pip install 'celery[redis]=={SERIES}*'`"
        )
    where = VENV.relative_to(ROOT) if VENV.is_relative_to(ROOT) else VENV
    return f"Celery {celery} (kombu {kombu}, py-amqp {amqp}, redis-py {redis_py}; {where})"


def prepare() -> str:
    """Make the Celery virtualenv if it is missing, then check what it has."""
    if not venv_ready():
        print(f"making the Celery virtualenv at {VENV} (pip, from PyPI) ...", flush=True)
        venvs.ensure("celery")
    return installed_versions()


class CeleryWorker:
    """``celery -A tests.chaos.celery_project worker`` in a process group of its own, its
    log (stdout and stderr) collected."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.lines: list[str] = []
        self._ready = threading.Event()
        command = [str(VENV / "bin" / "celery"), "-A", APP, "worker", "-l", "info", *args]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,  # a process group of its own
        )  # fmt: skip
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            if line.rstrip().endswith(" ready."):  # "w0@host ready."
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting either way

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.kill_group()
            raise AssertionError("the Celery worker did not start:\n" + self.log())

    def children(self) -> list[int]:
        try:
            return [child.pid for child in psutil.Process(self.pid).children()]
        except psutil.NoSuchProcess:
            return []

    def alive(self) -> bool:
        return self.process.poll() is None

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        """A warm shutdown (SIGTERM): runs in progress finish."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.kill_group()
        self._close_pipe()

    def kill_group(self) -> None:
        """Whatever is left of the worker and its children (cleanup, never a fault)."""
        try:
            os.killpg(self.pid, signal.SIGCONT)
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        """Once the group is gone, the reader sees the end of the log; then close it."""
        self._reader.join(10)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()


class Sender:
    """``python -m tests.chaos.celery_project`` in the Celery virtualenv: a request a line
    in, an answer a line out (see ``serve_sends`` there)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [str(_python()), "-m", APP], cwd=ROOT, env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        self.answers: queue.Queue[str | None] = queue.Queue()
        self.errors: list[str] = []
        self._readers = [threading.Thread(target=self._read_answers, daemon=True),
                         threading.Thread(target=self._read_errors, daemon=True)]  # fmt: skip
        for reader in self._readers:
            reader.start()

    def wait_ready(self) -> str:
        """Until the sender has imported Celery and the project; Celery's version."""
        version: str = self._answer(60.0)["ready"]
        return version

    def _read_answers(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def _read_errors(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.errors.append(line)

    def _answer(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            self.close()
            raise TimeoutError(f"the Celery sender gave no answer in {timeout} s") from None
        if line is None:
            raise RuntimeError("the Celery sender exited:\n" + "".join(self.errors[-20:]))
        answer: dict[str, Any] = json.loads(line)
        return answer

    def send(self, request: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        answer = self._answer(SEND_TIMEOUT)
        if "error" in answer:
            raise RuntimeError(f"Celery's apply_async raised {answer['error']}")

    def usable(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        if self.process.stdin is not None and not self.process.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()  # the sender's loop ends
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        for reader, pipe in zip(
            self._readers, (self.process.stdout, self.process.stderr), strict=True
        ):
            reader.join(10)
            if pipe is not None and not reader.is_alive():
                pipe.close()


class CelerySystem:
    """Celery workers from Celery's CLI; sends through sender processes of the Celery
    virtualenv, one per concurrent caller (the harness sends from one thread and probes from
    another, so two are started up front)."""

    name = "celery"
    keys = False  # Celery takes no idempotency keys
    pools = POOLS

    def __init__(self, setup: Setup) -> None:
        if setup.pool not in POOLS:
            raise ValueError(f"Celery has no {setup.pool} pool (it offers {', '.join(POOLS)})")
        self.prefix = f"chaos-{uuid.uuid4().hex[:8]}"
        self.pool = setup.pool
        common = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
            "PYTHONPATH": str(ROOT),  # tests.chaos.celery_project; not celeriac's src
            "PYTHONUNBUFFERED": "1",
            "CHAOS_RECORDS": setup.records_url, "CHAOS_PREFIX": self.prefix,
            "CHAOS_KIND": setup.broker.kind, "CHAOS_LEASE": str(setup.lease),
            "CHAOS_QUEUE_TYPE": setup.broker.options.get("queue_type", "classic"),
            # The worker skips a redelivered task whose success the records store holds,
            # on RabbitMQ, as celeriac's chaos app does (Celery spells it the same).
            "CHAOS_SETTINGS": json.dumps(extra_settings(setup.broker.kind)),
        }  # fmt: skip
        self.worker_env = {**common, "CHAOS_BROKER": setup.worker_broker_url}
        self.sender_env = {**common, "CHAOS_BROKER": setup.broker_url}
        self.store = redis.Redis.from_url(setup.records_url)
        self._idle: list[Sender] = []
        self._lock = threading.Lock()
        try:
            for _ in range(2):
                self._idle.append(Sender(self.sender_env))
            for sender in self._idle:
                sender.wait_ready()
        except BaseException:
            self.close()
            raise

    def start_worker(self, index: int, wait: bool = True) -> CeleryWorker:
        args = ("-P", self.pool, "-c", CONCURRENCY[self.pool], "-n", f"w{index}@%h", *WORKER_FLAGS)
        worker = CeleryWorker(self.worker_env, *args)
        if wait:
            worker.wait_ready()
        return worker

    def send(self, task_id: str, seconds: float, countdown: float | None,
             idempotency_key: str | None) -> None:  # fmt: skip
        if idempotency_key is not None:
            raise ValueError("Celery takes no idempotency keys")
        with self._lock:
            sender = self._idle.pop() if self._idle else None
        fresh = sender is None
        if sender is None:
            sender = Sender(self.sender_env)
        try:
            if fresh:
                sender.wait_ready()
            sender.send({"id": task_id, "seconds": seconds, "countdown": countdown})
        finally:
            with self._lock:
                if sender.usable():
                    self._idle.append(sender)
                else:
                    sender.close()

    def dead_letters(self) -> dict[str, str]:
        return {}  # Celery keeps no dead letters

    def wait_ran(self, task_id: str, timeout: float) -> bool:
        """Until the task's run is in the records store, or ``timeout``: each finished run
        pushes to ``<prefix>:done``, which wakes this up to look again."""
        give_up = time.monotonic() + timeout
        while True:
            runs = self.store.lrange(f"{self.prefix}:runs", 0, -1)
            if any(json.loads(raw)["id"] == task_id for raw in runs):
                return True
            left = give_up - time.monotonic()
            if left <= 0:
                return False
            self.store.blpop([f"{self.prefix}:done"], timeout=min(left, 0.5))

    def close(self) -> None:
        with self._lock:
            senders, self._idle = self._idle, []
        for sender in senders:
            sender.close()
        self.store.close()
