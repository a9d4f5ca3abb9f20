"""A worker started from the CLI on a real Redis Cluster (``redis+cluster://``): broker and
result store both on the cluster, queues whose keys live on different masters."""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import chord, group, states
from celeriac.exceptions import TaskRevokedError
from tests.integration.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 (fixture)
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import os, time

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_CLUSTER"]
    app = Celery(
        "clusterproj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX,
                                  "visibility_timeout": float(os.environ.get("LEASE", "30"))},
        result_backend_transport_options={"key_prefix": PREFIX},
    )


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def total(values):
        return sum(values)


    @app.task(rate_limit="5/s", rate_limit_scope="cluster")
    def limited(n):
        return time.time()


    @app.task
    def record(n):
        return n
    """
)


def queues_on_every_master(cluster: LocalCluster, prefix: str, count: int = 3) -> list[str]:
    """Queue names whose keys lie on ``count`` different masters (one per master)."""
    found: dict[int, str] = {}
    for n in range(1000):
        name = f"cq{n}"
        found.setdefault(cluster.owner(f"{prefix}:{{{name}}}:s0").port, name)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("no queue names spread over the masters")


def cluster_project(
    directory: Path, cluster: LocalCluster, name: str = "clusterproj", **extra: str
) -> tuple[dict[str, str], ModuleType]:
    """The project written to ``directory`` and imported here; the worker's environment."""
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    (directory / f"{name}.py").write_text(PROJECT)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(directory)]),
        "CELERIAC_TEST_CLUSTER": cluster.url,
        "CELERIAC_TEST_PREFIX": prefix,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CELERIAC_TEST_CLUSTER", cluster.url)
        patch.setenv("CELERIAC_TEST_PREFIX", prefix)
        patch.syspath_prepend(str(directory))
        module = importlib.import_module(name)
        sys.modules.pop(name, None)
    return env, module


@pytest.fixture
def project(
    tmp_path: Path,
    redis_cluster: LocalCluster,  # noqa: F811
) -> Iterator[tuple[Path, dict[str, str], ModuleType]]:
    env, module = cluster_project(tmp_path, redis_cluster)
    try:
        yield tmp_path, env, module
    finally:
        module.app.close()
        for node in redis_cluster.masters():
            client = node.client()
            try:
                for key in client.scan_iter(match=f"{module.PREFIX}*", count=1000):
                    client.delete(key)
            finally:
                client.close()


def test_a_worker_on_three_masters_runs_tasks_chords_revokes_and_rate_limits(
    project: tuple[Path, dict[str, str], ModuleType],
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    path, env, proj = project
    queues = queues_on_every_master(redis_cluster, proj.PREFIX)
    masters = {redis_cluster.owner(f"{proj.PREFIX}:{{{q}}}:s0").port for q in queues}
    assert len(masters) == 3
    worker = WorkerProcess.started(
        path, env, "-P", "threads", "-c", "4", "-Q", ",".join(queues), app="clusterproj"
    )
    try:
        # Tasks on every queue, some with a priority (the scripted publish), results back.
        sent = [
            proj.add.apply_async((n, n), queue=queues[n % 3], priority=9 if n % 4 == 0 else 0)
            for n in range(30)
        ]
        assert [r.get(timeout=30) for r in sent] == [2 * n for n in range(30)]

        # A chord whose header spans the masters; its join script and result keys are on
        # the cluster result store.
        header = group(proj.add.s(n, 1).set(queue=queues[n % 3]) for n in range(9))
        body = proj.total.s().set(queue=queues[0])
        assert chord(header)(body).get(timeout=30) == sum(n + 1 for n in range(9))

        # Revoked while it waits broker-side (a countdown): recorded REVOKED, never run.
        doomed = proj.record.apply_async((1,), queue=queues[1], countdown=2)
        doomed.revoke()
        with pytest.raises(TaskRevokedError):
            doomed.get(timeout=30)
        assert doomed.state == states.REVOKED

        # One bucket for the whole cluster: 5 per second over the queues.
        limited = [proj.limited.apply_async((n,), queue=queues[n % 3]) for n in range(6)]
        times = sorted(r.get(timeout=30) for r in limited)
        assert times[-1] - times[0] >= 5 * 0.18, times

        # The control plane (broadcast topics, replies) crosses the cluster too.
        replies = proj.app.control.inspect(timeout=5).ping()
        assert replies and all(reply == {"ok": "pong"} for reply in replies.values())
        assert worker.stop() == 0
    finally:
        worker.stop()
    assert "Traceback" not in worker.text, worker.text


def test_a_delayed_task_runs_on_time_through_the_wait_of_another_master(
    project: tuple[Path, dict[str, str], ModuleType],
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    """The worker blocks on one read per master; a countdown on one queue wakes it when due."""
    path, env, proj = project
    queues = queues_on_every_master(redis_cluster, proj.PREFIX)
    worker = WorkerProcess.started(
        path, env, "-P", "threads", "-c", "2", "-Q", ",".join(queues), app="clusterproj"
    )
    try:
        sent = time.monotonic()
        later = proj.record.apply_async((7,), queue=queues[2], countdown=1.5)
        assert later.get(timeout=20) == 7
        elapsed = time.monotonic() - sent
        assert 1.4 <= elapsed < 4, f"ran {elapsed:.2f} s after a countdown of 1.5 s"
        assert worker.stop() == 0
    finally:
        worker.stop()
