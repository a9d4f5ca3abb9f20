"""Fixtures for a real Redis Cluster (``redis_cluster_servers.LocalCluster``: six
redis-servers on spare ports) and a project whose broker and result store are the cluster.
"""

from __future__ import annotations

import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.redis_cluster_servers import (  # noqa: F401 (for the cluster tests)
    NODE_TIMEOUT_MS,
    ClusterNode,
    LocalCluster,
    command,
    start_cluster,
)
from tests.integration.workers import ROOT


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """One cluster for the tests that do not break it."""
    cluster = start_cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_redis_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    """A cluster of this test's own, which it may break (kill a master)."""
    cluster = start_cluster(tmp_path / "cluster")
    try:
        yield cluster
    finally:
        cluster.stop()


# -- a project whose broker and result store are the cluster --------------------------------

PROJECT = textwrap.dedent(
    """
    import os, time

    import redis

    from celeriac import Celery

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_CLUSTER"]
    app = Celery(
        "clusterproj", broker=URL, backend=URL,
        broker_transport_options={"key_prefix": PREFIX,
                                  "visibility_timeout": float(os.environ.get("LEASE", "30"))},
        result_backend_transport_options={"key_prefix": PREFIX},
        result_backend_always_retry=True,  # a failover is an outage of a few seconds
    )
    # Outside the cluster (the test's own Redis): which tasks ran, and when, whatever the
    # cluster loses in a failover.
    MARKS = os.environ.get("CELERIAC_TEST_MARKS")
    marks = redis.Redis.from_url(MARKS) if MARKS else None


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
        if marks is not None:
            marks.hset(f"{PREFIX}:ran", str(n), repr(time.time()))
            marks.hincrby(f"{PREFIX}:runs", str(n), 1)
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
