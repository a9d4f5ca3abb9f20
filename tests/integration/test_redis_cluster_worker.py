"""A worker started from the CLI on a real Redis Cluster (``redis+cluster://``): broker and
result store both on the cluster, queues whose keys live on different masters."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import chord, group, states
from celeriac.exceptions import TaskRevokedError
from tests.integration.redis_cluster import (  # noqa: F401 (redis_cluster: a fixture)
    LocalCluster,
    cluster_project,
    queues_on_every_master,
    redis_cluster,
)
from tests.integration.workers import WorkerProcess


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
