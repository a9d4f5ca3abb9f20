"""Celery 5.7 and celeriac on the same RabbitMQ queues and Redis result store
(``wire_format = "celery"``): a Celery producer's tasks run on a celeriac worker started
from the CLI, a celeriac producer's tasks run on a Celery worker, and each side reads the
results the other stored.

One project module serves both sides (``INTEROP_SIDE`` says which library it imports);
Celery runs from its own virtualenv (``CELERIAC_CELERY_VENV``, ``/work/celery-ref/.venv``
by default: these tests are skipped without it). They use a vhost of their own, so
Celery's default names (exchange and queue ``celery``) are used exactly as Celery makes
them, and a result key prefix of their own.
"""

from __future__ import annotations

import importlib
import json
import os
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
from urllib.parse import urlsplit

import pytest
import redis

from tests.conftest import delete_vhost, rabbitmqctl
from tests.integration.workers import ROOT, WorkerProcess

CELERY_VENV = Path(os.environ.get("CELERIAC_CELERY_VENV", "/work/celery-ref/.venv"))
CELERY_PYTHON = CELERY_VENV / "bin" / "python"
if not CELERY_PYTHON.exists():
    pytest.skip(
        f"no Celery virtualenv at {CELERY_VENV} (set CELERIAC_CELERY_VENV)",
        allow_module_level=True,
    )

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    SIDE = os.environ["INTEROP_SIDE"]
    if SIDE == "celery":
        from celery import Celery
    else:
        from celeriac import Celery

    PREFIX = os.environ["INTEROP_PREFIX"]
    REDIS = os.environ["INTEROP_REDIS"]
    app = Celery(
        "interop", broker=os.environ["INTEROP_AMQP"], backend=REDIS,
        result_backend_transport_options={"global_keyprefix": PREFIX},
        broker_connection_retry_on_startup=True,
        **({"wire_format": "celery"} if SIDE == "celeriac" else {}),
    )
    marks = redis.Redis.from_url(REDIS)


    @app.task(name="interop.add")
    def add(x, y):
        return x + y


    @app.task(name="interop.mul")
    def mul(x, y):
        return x * y


    @app.task(name="interop.when", bind=True)
    def when(self):
        return {"at": time.time(), "side": SIDE, "eta": bool(self.request.eta)}


    @app.task(name="interop.flaky", bind=True, max_retries=3)
    def flaky(self, key):
        attempts = marks.incr(f"{PREFIX}:attempts:{key}")
        if attempts < 2:
            raise self.retry(countdown=0.5)
        return {"attempts": attempts, "retries": self.request.retries, "side": SIDE}


    @app.task(name="interop.boom")
    def boom():
        raise ValueError("boom")


    @app.task(name="interop.on_error")
    def on_error(task_id):
        marks.rpush(f"{PREFIX}:errback", f"{task_id}|{SIDE}")
    """
)

# The Celery producer: one scenario per run, its outcome as JSON on the last line, read
# back with Celery's own AsyncResult.get() from what a celeriac worker stored.
PRODUCER = textwrap.dedent(
    """
    import json, sys, time

    from celery import chain

    import interop as p

    scenario = sys.argv[1]
    if scenario == "delay":
        out = p.add.delay(2, 3).get(timeout=15)
    elif scenario == "countdown":
        sent = time.time()
        ran = p.when.apply_async(countdown=1.5).get(timeout=15)
        out = {"after": ran["at"] - sent, "side": ran["side"], "eta": ran["eta"]}
    elif scenario == "retry":
        result = p.flaky.delay(sys.argv[2])
        out = {**result.get(timeout=15), "state": result.state}
    elif scenario == "chain":
        result = chain(p.add.s(2, 3), p.mul.s(10)).apply_async()
        out = {"result": result.get(timeout=15), "first": result.parent.get(timeout=15)}
    elif scenario == "link_error":
        result = p.boom.apply_async(link_error=p.on_error.s())
        result.get(timeout=15, propagate=False)
        errback = p.marks.blpop(f"{p.PREFIX}:errback", 15)
        out = {
            "state": result.state,
            "error": type(result.result).__name__,
            "message": str(result.result),
            "errback": errback[1].decode() if errback else None,
            "id": result.id,
        }
    elif scenario == "declare":  # the queues in argv, declared as Celery declares them
        from kombu import Exchange, Queue

        queues = [Queue(name, Exchange(name), routing_key=name,
                        queue_arguments={"x-queue-type": "quorum"}) for name in sys.argv[2:]]
        with p.app.connection_for_write() as conn:
            for queue in queues:
                queue.bind(conn.default_channel).declare()
        out = "declared"
    print(json.dumps(out))
    """
)


class CeleryWorker:
    """``celery -A interop worker -P solo`` from Celery's virtualenv, its log collected."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.log: list[str] = []
        self._ready = threading.Event()
        command = [
            str(CELERY_VENV / "bin" / "celery"), "-A", "interop", "worker", "-P", "solo",
            "-l", "info", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(30) or self.process.poll() is not None:
            self.stop()
            raise AssertionError("the Celery worker did not start:\n" + self.text)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if " ready." in line:
                self._ready.set()
        self._ready.set()

    @property
    def text(self) -> str:
        return "".join(self.log)

    def stop(self) -> None:
        """Killed: every call it was given has finished, and its vhost goes next. (Celery
        5.7's solo pool spends ten seconds in a warm or cold stop after an errback, failing
        to cancel a request it no longer runs.)"""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()


@pytest.fixture(scope="module")
def interop(
    amqp_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A vhost and a result key prefix of this module's own, and the project on disk."""
    vhost = f"celeriac-interop-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    netloc = urlsplit(amqp_url).netloc
    path = tmp_path_factory.mktemp("interop")
    (path / "interop.py").write_text(PROJECT)
    (path / "produce.py").write_text(PRODUCER)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    settings = {
        "INTEROP_AMQP": f"amqp://{netloc}/{vhost}",
        "INTEROP_REDIS": redis_url,
        "INTEROP_PREFIX": prefix,
    }
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    try:
        yield {"path": path, "env": env, "vhost": vhost, "settings": settings}
    finally:
        delete_vhost(vhost)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def celery_env(interop: dict[str, Any]) -> dict[str, str]:
    return {**interop["env"], "INTEROP_SIDE": "celery", "PYTHONPATH": str(interop["path"])}


def celeriac_env(interop: dict[str, Any]) -> dict[str, str]:
    paths = [str(ROOT / "src"), str(ROOT), str(interop["path"])]
    return {**interop["env"], "INTEROP_SIDE": "celeriac", "PYTHONPATH": os.pathsep.join(paths)}


def produce(interop: dict[str, Any], *args: str) -> Any:
    """Run one scenario of the Celery producer; its outcome."""
    done = subprocess.run(
        [str(CELERY_PYTHON), "produce.py", *args], cwd=interop["path"],
        env=celery_env(interop), capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"the Celery producer failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def queue_arguments(vhost: str) -> dict[str, str]:
    listed = rabbitmqctl(
        "list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "arguments"
    )
    return dict(line.split("\t", 1) for line in listed.strip().splitlines() if "\t" in line)


# -- a Celery producer, a celeriac worker -------------------------------------------------------
@pytest.fixture(scope="class")
def celeriac_worker(interop: dict[str, Any]) -> Iterator[WorkerProcess]:
    """Celery declares its queues first; then a celeriac worker, started from the CLI."""
    assert produce(interop, "declare", "interop-quorum") == "declared"
    worker = WorkerProcess.started(
        interop["path"], celeriac_env(interop), "-P", "solo", "-Q", "celery", app="interop"
    )
    try:
        yield worker
    finally:
        worker.stop()
    for trouble in ("dead-lettered", "internal error", "DecodeError"):
        assert trouble not in worker.text, worker.text


@pytest.mark.usefixtures("celeriac_worker")
class TestCeleryProducerCeleriacWorker:
    """Celery declares its queue and sends first; the celeriac worker declares it again
    (no PRECONDITION_FAILED), runs the calls, and Celery's AsyncResult reads the results."""

    def test_delay(self, interop: dict[str, Any]) -> None:
        assert produce(interop, "delay") == 5

    def test_countdown_waits_for_its_eta(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "countdown")
        assert out["side"] == "celeriac" and out["eta"] is True
        assert out["after"] >= 1.5 - 0.05, "ran before its eta"
        assert out["after"] < 10

    def test_retry(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "retry", f"c2l-{uuid.uuid4().hex[:6]}")
        assert out == {"attempts": 2, "retries": 1, "side": "celeriac", "state": "SUCCESS"}

    def test_chain(self, interop: dict[str, Any]) -> None:
        assert produce(interop, "chain") == {"result": 50, "first": 5}

    def test_link_error(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "link_error")
        assert out["state"] == "FAILURE"
        assert (out["error"], out["message"]) == ("ValueError", "boom")
        assert out["errback"] == f"{out['id']}|celeriac"

    def test_the_topology_is_celerys(self, interop: dict[str, Any]) -> None:
        vhost = interop["vhost"]
        arguments = queue_arguments(vhost)
        assert arguments["celery"] == "[]", "the queue Celery declares has no arguments"
        bindings = rabbitmqctl(
            "list_bindings", "-p", vhost, "-q", "--no-table-headers",
            "source_name", "destination_name", "routing_key",
        )  # fmt: skip
        assert "celery\tcelery\tcelery" in bindings.splitlines()
        # A quorum queue Celery declared is declared again by celeriac as it is.
        from celeriac import Celery

        app = Celery(
            "check", broker=interop["settings"]["INTEROP_AMQP"], wire_format="celery",
            task_queues={"interop-quorum": {"queue_arguments": {"x-queue-type": "quorum"},
                                            "exchange": "interop-quorum"},
                         "interop-quorum-2": {"queue_arguments": {"x-queue-type": "quorum"},
                                              "exchange": "interop-quorum-2"}},
        )  # fmt: skip
        try:
            app.broker.declare_queue("interop-quorum")
            app.broker.declare_queue("interop-quorum-2")  # celeriac first, Celery after
            assert produce(interop, "declare", "interop-quorum-2") == "declared"
        finally:
            app.close()
        arguments = queue_arguments(vhost)
        for name in ("interop-quorum", "interop-quorum-2"):
            assert "x-queue-type" in arguments[name] and "quorum" in arguments[name]
            assert "x-delivery-limit" not in arguments[name]


# -- a celeriac producer, a Celery worker -------------------------------------------------------
@pytest.fixture(scope="class")
def proj(interop: dict[str, Any]) -> Iterator[ModuleType]:
    """The project imported here as celeriac's side."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**interop["settings"], "INTEROP_SIDE": "celeriac"}.items():
            patch.setenv(name, value)
        patch.syspath_prepend(str(interop["path"]))
        sys.modules.pop("interop", None)
        module = importlib.import_module("interop")
        try:
            yield module
        finally:
            module.app.close()
            sys.modules.pop("interop", None)


@pytest.fixture(scope="class")
def celery_worker(interop: dict[str, Any], proj: ModuleType) -> Iterator[CeleryWorker]:
    proj.app.broker.purge("celery")  # what the other class's worker may have left
    worker = CeleryWorker(interop["path"], celery_env(interop))
    try:
        yield worker
    finally:
        worker.stop()


@pytest.mark.usefixtures("celery_worker")
class TestCeleriacProducerCeleryWorker:
    """celeriac sends (declaring the queue as Celery does), a Celery worker runs the calls,
    and celeriac's AsyncResult reads what Celery stored."""

    def test_delay(self, proj: ModuleType) -> None:
        assert proj.add.delay(2, 3).get(timeout=15) == 5

    def test_countdown_waits_for_its_eta(self, proj: ModuleType) -> None:
        sent = time.time()
        ran = proj.when.apply_async(countdown=1.5).get(timeout=15)
        assert ran["side"] == "celery" and ran["eta"] is True
        assert ran["at"] - sent >= 1.5 - 0.05, "ran before its eta"

    def test_retry(self, proj: ModuleType) -> None:
        result = proj.flaky.delay(f"l2c-{uuid.uuid4().hex[:6]}")
        assert result.get(timeout=15) == {"attempts": 2, "retries": 1, "side": "celery"}

    def test_chain(self, proj: ModuleType) -> None:
        from celeriac import chain

        result = chain(proj.add.s(2, 3), proj.mul.s(10)).apply_async()
        assert result.get(timeout=15) == 50
        assert result.parent.get(timeout=15) == 5

    def test_link_error(self, proj: ModuleType) -> None:
        result = proj.boom.apply_async(link_error=proj.on_error.s())
        with pytest.raises(Exception, match="boom") as raised:
            result.get(timeout=15)
        assert type(raised.value).__name__ == "ValueError"
        errback = proj.marks.blpop(f"{proj.PREFIX}:errback", 15)
        assert errback is not None and errback[1].decode() == f"{result.id}|celery"
