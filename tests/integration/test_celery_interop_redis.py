"""Celery 5.7 and celeriac on the same Redis queues (kombu's layout, ``kombu+redis://``)
and result store, with ``wire_format = "celery"``: a celeriac producer's task runs on a
Celery worker and celeriac reads the result; a Celery producer's task runs on a celeriac
worker started from the CLI and Celery's AsyncResult reads the result. Both sides use one
``global_keyprefix`` of the module's own, for the queues and for the results, so Celery's
default queue (``celery``) is used exactly as Celery makes it.

Celery runs from its own virtualenv (``CELERIAC_CELERY_VENV``, ``/work/celery-ref/.venv``
by default): skipped without it.
"""

from __future__ import annotations

import base64
import importlib
import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.test_celery_interop_amqp import CELERY_PYTHON, CeleryWorker
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os

    SIDE = os.environ["INTEROP_SIDE"]
    if SIDE == "celery":
        from celery import Celery
    else:
        from celeriac import Celery

    PREFIX = os.environ["INTEROP_PREFIX"]
    REDIS = os.environ["INTEROP_REDIS"]
    options = {"global_keyprefix": PREFIX}
    if SIDE == "celeriac":  # look for what Celery's producers push at least this often
        options["polling_interval"] = 0.1
    app = Celery(
        "interop", broker=("kombu+" if SIDE == "celeriac" else "") + REDIS, backend=REDIS,
        broker_transport_options=options,
        result_backend_transport_options={"global_keyprefix": PREFIX},
        broker_connection_retry_on_startup=True,
        **({"wire_format": "celery"} if SIDE == "celeriac" else {}),
    )


    @app.task(name="interop.add", bind=True)
    def add(self, x, y):
        return {"sum": x + y, "side": SIDE, "id": self.request.id}
    """
)

PRODUCER = textwrap.dedent(
    """
    import json

    import interop as p

    result = p.add.delay(2, 3)
    print(json.dumps({"id": result.id, "out": result.get(timeout=15), "state": result.state}))
    """
)


@pytest.fixture(scope="module")
def interop(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A key prefix of this module's own (queues and results), and the project on disk."""
    path = tmp_path_factory.mktemp("interop-redis")
    (path / "interop.py").write_text(PROJECT)
    (path / "produce.py").write_text(PRODUCER)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}:"
    settings = {"INTEROP_REDIS": redis_url, "INTEROP_PREFIX": prefix}
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    try:
        yield {"path": path, "env": env, "settings": settings, "prefix": prefix}
    finally:
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


@pytest.fixture
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


def stored_envelopes(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Every message waiting on the lists of Celery's default queue."""
    found: list[dict[str, Any]] = []
    for key in client.scan_iter(match=f"{prefix}celery*"):
        if client.type(key) == b"list":
            found += [json.loads(item) for item in client.lrange(key, 0, -1)]
    return found


def test_a_celery_worker_runs_what_celeriac_sent(
    interop: dict[str, Any], proj: ModuleType, redis_url: str
) -> None:
    result = proj.add.delay(2, 3)
    # Stored as kombu's Redis transport stores a Celery message, before any worker runs.
    client = redis.Redis.from_url(redis_url)
    try:
        [stored] = stored_envelopes(client, interop["prefix"])
    finally:
        client.close()
    assert (stored["content-type"], stored["content-encoding"]) == ("application/json", "utf-8")
    assert (stored["headers"]["task"], stored["headers"]["id"]) == ("interop.add", result.id)
    properties = stored["properties"]
    assert list(properties) == [
        "correlation_id", "reply_to", "delivery_mode", "delivery_info", "priority",
        "body_encoding", "delivery_tag",
    ]  # fmt: skip
    assert properties["correlation_id"] == result.id and properties["delivery_mode"] == 2
    assert properties["delivery_info"] == {"exchange": "", "routing_key": "celery"}
    assert json.loads(base64.b64decode(stored["body"]))[:2] == [[2, 3], {}]

    worker = CeleryWorker(interop["path"], celery_env(interop))
    try:
        assert result.get(timeout=15) == {"sum": 5, "side": "celery", "id": result.id}
    finally:
        worker.stop()
    assert f"Task interop.add[{result.id}] received" in worker.text, worker.text


def test_a_celeriac_worker_runs_what_celery_sent(interop: dict[str, Any]) -> None:
    worker = WorkerProcess.started(
        interop["path"], celeriac_env(interop), "-P", "solo", "-Q", "celery", app="interop"
    )
    try:
        done = subprocess.run(
            [str(CELERY_PYTHON), "produce.py"], cwd=interop["path"], env=celery_env(interop),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    finally:
        worker.stop()
    assert done.returncode == 0, f"the Celery producer failed:\n{done.stdout}\n{done.stderr}"
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["state"] == "SUCCESS"
    assert out["out"] == {"sum": 5, "side": "celeriac", "id": out["id"]}
    for trouble in ("dead-lettered", "internal error", "DecodeError"):
        assert trouble not in worker.text, worker.text
