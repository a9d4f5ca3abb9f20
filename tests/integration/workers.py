"""Real worker processes for integration tests: a small project on disk, started from the
CLI exactly as a user would (``python -m celeriac -A proj worker ...``)."""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.conftest import REDIS_URL, service_missing

ROOT = Path(__file__).resolve().parents[2]

PROJECT = textwrap.dedent(
    """
    import asyncio, gc, os, threading, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL  # results are always in Redis
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": PREFIX}
    app = Celery(
        "proj", broker=BROKER, backend=URL,
        broker_transport_options={**options,
                                  "visibility_timeout": float(os.environ.get("LEASE", "30"))},
        result_backend_transport_options={"key_prefix": PREFIX},
        task_delivery_limit=int(os.environ.get("DELIVERY_LIMIT", "5")),
    )
    marks = redis.Redis.from_url(URL)


    def mark(name, value):
        marks.rpush(f"{PREFIX}:marks:{name}", value)  # the record, for counting
        marks.rpush(f"{PREFIX}:events:{name}", value)  # consumed by tests that wait


    @app.task
    def add(x, y):
        return x + y


    @app.task
    async def async_add(x, y):
        await asyncio.sleep(0.01)
        return x + y


    @app.task(bind=True)
    def where(self):
        return {"pid": os.getpid(), "thread": threading.current_thread().name,
                "hostname": self.request.hostname, "gc_young": gc.get_threshold()[0],
                "gc_frozen": gc.get_freeze_count()}


    @app.task
    def loaded(names):
        import sys

        return [name for name in names if name in sys.modules]


    @app.task
    def poison():
        mark("poison", str(os.getpid()))
        os._exit(1)  # kills whatever process runs it, every time


    @app.task
    def slow(tag, seconds):
        mark("started", f"{tag}:{os.getpid()}")
        time.sleep(seconds)  # the task's own work
        mark("finished", tag)
        return tag
    """
)


class WorkerProcess:
    """``celeriac -A proj worker`` in a child process, with its log collected."""

    def __init__(
        self,
        project: Path,
        env: dict[str, str],
        *args: str,
        app: str = "proj",
        own_group: bool = False,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        """``own_group``: in a process group of its own (as systemd starts a service), so a
        test can signal the worker and its children together with ``os.killpg``.
        ``wrapper``: a command the worker's command line is handed to (``unshare ...``)."""
        self.log: list[str] = []
        self._ready = threading.Event()
        command = [*wrapper, sys.executable, "-m", "celeriac", "-A", app, "worker"]
        self.process = subprocess.Popen(
            [*command, "-l", "info", *args],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            process_group=0 if own_group else None,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def started(
        cls, project: Path, env: dict[str, str], *args: str, app: str = "proj", **kw: Any
    ) -> WorkerProcess:
        """A worker that is ready to consume; one that fails to start is stopped, not leaked."""
        process = cls(project, env, *args, app=app, **kw)
        try:
            process.wait_ready()
        except BaseException:
            process.stop()
            raise
        return process

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if " ready." in line:
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting either way

    def wait_ready(self, timeout: float = 20) -> None:
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            raise AssertionError("worker did not start:\n" + "".join(self.log))

    def wait_for_log(self, text: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.log):
            assert time.monotonic() < deadline, f"{text!r} not logged:\n{''.join(self.log)}"
            time.sleep(0.05)  # the reader thread appends lines as they come

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit by itself (after a signal sent earlier)."""
        return self.process.wait(timeout)

    def stop(self, timeout: float = 30) -> int:
        """A warm stop (SIGTERM). A worker still running after ``timeout`` is asked for its
        threads' stacks (SIGUSR1), killed, and reported with its log."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(2)  # (it keeps running: the time to write its stacks)
            self._end()
            raise AssertionError(f"the worker did not stop in {timeout} s:\n{self.text}") from None
        finally:
            self._end()

    def _end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        # The reader sees the end of the log before the pipe closes, never a pipe closed
        # under it (a child that outlived the worker may still hold it open).
        self._reader.join(10)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()

    @property
    def text(self) -> str:
        return "".join(self.log)


def project_env(
    project: Path, redis_url: str, prefix: str, broker: str = "", **extra: str
) -> dict[str, str]:
    """Write the project; its environment. ``broker``: an ``amqp://`` URL to run it on
    RabbitMQ (a namespace of its own), or empty for the Redis at ``redis_url``."""
    (project / "proj.py").write_text(PROJECT)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(project)]),
        "CELERIAC_TEST_REDIS": redis_url,
        "CELERIAC_TEST_PREFIX": prefix,
        "CELERIAC_TEST_BROKER": broker,
        "CELERIAC_TEST_NAMESPACE": f"t{prefix.rsplit('-', 1)[-1]}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


TEST_ENV = ("CELERIAC_TEST_REDIS", "CELERIAC_TEST_PREFIX", "CELERIAC_TEST_BROKER",
            "CELERIAC_TEST_NAMESPACE")  # fmt: skip


def fresh_queues(app: Any, *queues: str) -> None:
    """On RabbitMQ, queue names are shared by every test of the session's vhost: empty the
    ones a test uses, so a message an earlier test left behind never reaches its worker.
    (On Redis each test's key prefix gives it queues of its own.)"""
    if app.conf.broker_url.startswith("amqp"):
        for queue in queues or ("celery",):
            app.broker.purge(queue)


def broker_url(request: Any) -> str:
    """For a test parametrized over ``"redis"``/``"amqp"``: the broker URL (empty: Redis)."""
    return str(request.getfixturevalue("amqp_url")) if request.param == "amqp" else ""


@contextlib.contextmanager
def imported_project(
    request: Any, tmp_path_factory: pytest.TempPathFactory, name: str, source: str
) -> Iterator[tuple[Path, ModuleType]]:
    """For a module fixture parametrized over ``"redis"``/``"amqp"``: ``source`` written as
    the module ``name`` in a directory of its own and imported here with the test
    environment (results in Redis, messages on the parametrized broker, a key prefix and a
    namespace of its own); closed, forgotten and its keys deleted afterwards."""
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")
    broker = request.getfixturevalue("amqp_url") if request.param == "amqp" else ""
    path = tmp_path_factory.mktemp(name)
    (path / f"{name}.py").write_text(source)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_REDIS", REDIS_URL)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.setenv("CELERIAC_TEST_BROKER", broker)
        patch.setenv("CELERIAC_TEST_NAMESPACE", f"t{uuid.uuid4().hex[:10]}")
        patch.syspath_prepend(str(path))
        proj = importlib.import_module(name)
        fresh_queues(proj.app)
        try:
            yield path, proj
        finally:
            proj.app.close()
            sys.modules.pop(name, None)
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
