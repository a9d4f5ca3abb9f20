"""A result store that stops answering must not stop a worker's lease heartbeats: the
worker keeps renewing the leases of the messages it holds, so no other worker takes one
over and runs it a second time.

The result store is a redis-server of the test's own, paused with ``CLIENT PAUSE``; the
broker is the shared test Redis. Tasks report through the broker's Redis, so the test
waits on BLPOP, never on sleeps.
"""

from __future__ import annotations

import os
import socket
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from celeriac import Celery, states
from celeriac.exceptions import BackendError
from tests.integration.conftest import PrivateRedis
from tests.integration.workers import ROOT, WorkerProcess

LEASE = 1.5  # seconds: the store stays paused for several of these

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    BROKER = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery(
        "stallproj", broker=BROKER, backend=os.environ["CELERIAC_TEST_RESULTS"],
        broker_transport_options={"key_prefix": PREFIX, "visibility_timeout": LEASE_SECONDS},
    )
    marks = redis.Redis.from_url(BROKER)


    @app.task
    def slow(seconds):
        marks.rpush(f"{PREFIX}:started", os.getpid())
        time.sleep(seconds)  # the task's own work
        return "done"


    @app.task
    def quick():
        return "quick"
    """
).replace("LEASE_SECONDS", str(LEASE))


@pytest.fixture
def project(
    tmp_path: Path, redis_url: str, private_redis: PrivateRedis
) -> Iterator[tuple[Celery, dict[str, str]]]:
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    (tmp_path / "stallproj.py").write_text(PROJECT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)]),
        "CELERIAC_TEST_REDIS": redis_url,
        "CELERIAC_TEST_RESULTS": private_redis.url,
        "CELERIAC_TEST_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
    }
    app = Celery(
        "stallproj", broker=redis_url, backend=private_redis.url,
        broker_transport_options={"key_prefix": prefix, "visibility_timeout": LEASE},
    )  # fmt: skip
    try:
        yield app, env
    finally:
        app.close()
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def start(path: str, env: dict[str, str], name: str, *queues: str) -> WorkerProcess:
    return WorkerProcess.started(
        Path(path), env, "-P", "threads", "-c", "2", "-Q", ",".join(queues), "-n", name,
        app="stallproj",
    )  # fmt: skip


def heard_revoke(app: Celery, node: str, task_id: str) -> None:
    """Until ``node`` knows ``task_id`` is revoked: a revoke and a message sent right after
    it travel apart (a broadcast, a queue), so a test that needs the order waits."""
    deadline = time.monotonic() + 20
    while task_id not in (app.control.inspect([node], timeout=1).revoked() or {}).get(node, []):
        assert time.monotonic() < deadline, f"{node} never heard of the revoke of {task_id}"


def test_a_paused_result_store_does_not_stop_lease_heartbeats(
    project: tuple[Celery, dict[str, str]], private_redis: PrivateRedis
) -> None:
    app, env = project
    project_dir = env["PYTHONPATH"].split(os.pathsep)[-1]
    marks = redis.Redis.from_url(env["CELERIAC_TEST_REDIS"])
    started_key = f"{env['CELERIAC_TEST_PREFIX']}:started"
    holder = start(project_dir, env, "holder@%h", "celery", "side")
    other = None
    try:
        # Given a worker running a long task (its lease is renewed by heartbeats),
        long_task = app.signature("stallproj.slow", args=(4 * LEASE,)).apply_async()
        assert marks.blpop([started_key], timeout=20) is not None
        # and a second worker on the same queue, ready to take over any lapsed lease,
        other = start(project_dir, env, "other@%h", "celery")
        # when the result store stops answering and the first worker must write to it
        # from its consumer (a revoked message is recorded REVOKED there),
        revoked_id = str(uuid.uuid4())
        app.control.revoke(revoked_id)
        heard_revoke(app, f"holder@{socket.gethostname()}", revoked_id)
        store = redis.Redis(port=private_redis.port)
        store.execute_command("CLIENT", "PAUSE", int(3 * LEASE * 1000), "ALL")
        app.signature("stallproj.quick").apply_async(task_id=revoked_id, queue="side")
        # then the long task still finishes once: no worker took its lease over
        assert long_task.get(timeout=30) == "done"
        assert marks.blpop([started_key], timeout=LEASE) is None, "the task ran twice"
        assert app.AsyncResult(revoked_id).get(timeout=10, propagate=False) is not None
        assert app.AsyncResult(revoked_id).state == states.REVOKED
        assert "was lost" not in holder.text, holder.text
    finally:
        marks.close()
        assert holder.stop() == 0, holder.text
        if other is not None:
            assert other.stop() == 0, other.text


def test_a_result_store_that_stops_answering_fails_a_call_within_its_socket_timeout(
    private_redis: PrivateRedis,
) -> None:
    app = Celery(
        "stalled", broker="memory://", backend=private_redis.url,
        result_backend_transport_options={"socket_timeout": 0.5},
    )  # fmt: skip
    admin = redis.Redis(port=private_redis.port)
    try:
        app.backend.store_result("before", 1, states.SUCCESS)  # connected while it answers
        admin.execute_command("CLIENT", "PAUSE", 3_000, "ALL")  # the server is stopped after
        started = time.monotonic()
        with pytest.raises(BackendError):
            app.backend.store_result("during", 2, states.SUCCESS)
        assert time.monotonic() - started < 2  # the 0.5 s timeout, not the 3 s pause
    finally:
        admin.close()
        app.close()
