"""The user-guide suite's harness: a chapter's project on disk, imported here, and a real
worker started on it from the CLI, as a user moving a Celery project would run it.

Each chapter module writes its project (``from celeriac import Celery`` and the code the
chapter teaches) and a ``celeryconfig.py`` naming a Redis (or RabbitMQ) broker and the
Redis result store, under a key prefix of the run's own that is deleted afterwards.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import textwrap
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac.app import shared
from tests.conftest import REDIS_URL, service_missing
from tests.integration.workers import ROOT, WorkerProcess

CONFIG = textwrap.dedent(
    """
    broker_url = {broker!r}
    result_backend = {backend!r}
    broker_transport_options = {transport!r}
    result_backend_transport_options = {{"key_prefix": {prefix!r}}}
    """
)


@dataclass
class Guide:
    """A chapter's project: its module as imported here, its directory and its prefix."""

    module: ModuleType
    path: Path
    prefix: str
    broker: str

    @property
    def env(self) -> dict[str, str]:
        """The environment a worker (or any other process) of the project runs with."""
        return {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(self.path)]),
            "PYTHONUNBUFFERED": "1",
            "GUIDE_PREFIX": self.prefix,
        }

    def worker(self, *args: str) -> WorkerProcess:
        """``celeriac -A <project> worker <args>``, ready to consume."""
        return WorkerProcess.started(self.path, self.env, *args, app=self.module.__name__)

    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(REDIS_URL, decode_responses=True)


def redis_or_skip() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{REDIS_URL} did not answer ({exc})")


@contextlib.contextmanager
def guide_project(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    source: str,
    *,
    broker: str = "",
    files: dict[str, str] | None = None,
) -> Iterator[Guide]:
    """Write the project ``name`` (its module ``source``, ``celeryconfig.py`` and any other
    ``files``), import it here, and clean its keys (and queues) up afterwards."""
    redis_or_skip()
    path = tmp_path_factory.mktemp(name)
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    if broker.startswith("amqp"):
        transport = {"namespace": f"t{prefix.rsplit('-', 1)[-1]}"}
    else:
        transport = {"key_prefix": prefix}
    config = CONFIG.format(
        broker=broker or REDIS_URL, backend=REDIS_URL, transport=transport, prefix=prefix
    )
    (path / "celeryconfig.py").write_text(config)
    for filename, text in (files or {}).items():
        (path / filename).parent.mkdir(parents=True, exist_ok=True)
        (path / filename).write_text(textwrap.dedent(text))
    (path / f"{name}.py").write_text(textwrap.dedent(source))
    owned = [key for key in sys.modules if key in {name, "celeryconfig"}]
    saved = {key: sys.modules.pop(key) for key in owned}
    # A chapter's @shared_task joins every app made after it, as in Celery: forget it
    # afterwards, so later tests' apps do not grow the chapter's tasks.
    builders = list(shared._builders)
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(path))
        patch.setenv("GUIDE_PREFIX", prefix)
        module = importlib.import_module(name)
        try:
            yield Guide(module, path, prefix, broker or REDIS_URL)
        finally:
            module.app.close()
            for key in [key for key in sys.modules if key == name or key == "celeryconfig"]:
                del sys.modules[key]
            sys.modules.update(saved)
            shared._builders[:] = builders
            client = redis.Redis.from_url(REDIS_URL)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()
