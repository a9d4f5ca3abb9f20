"""A stop as systemd sends it (``KillMode=control-group``): SIGTERM to the worker and to
every prefork child at once. The children finish their task, and the worker logs a plain
warm shutdown, not children "killed by signal 15"."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.workers import TEST_ENV, WorkerProcess, project_env


@pytest.fixture
def proj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, dict[str, str]]]:
    env = project_env(tmp_path, redis_url, redis_prefix)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    module = importlib.import_module("proj")
    yield module, env
    module.app.close()
    sys.modules.pop("proj", None)


def test_sigterm_to_the_process_group_is_a_clean_warm_shutdown(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    worker = WorkerProcess.started(tmp_path, env, "-P", "prefork", "-c", "2", own_group=True)
    try:
        results = [module.slow.delay(f"g{n}", 1.5) for n in range(2)]
        for _ in results:  # both children are inside the task body
            assert module.marks.blpop(f"{module.PREFIX}:events:started", 10)
        os.killpg(worker.process.pid, signal.SIGTERM)  # what systemd does
        assert worker.wait(timeout=30) == 0
        assert sorted(r.get(timeout=5) for r in results) == ["g0", "g1"]
    finally:
        worker.stop()
    log = worker.text
    assert "SIGTERM received: warm shutdown" in log
    assert "killed by signal" not in log and "WorkerLostError" not in log, log
    assert log.count("succeeded in") == 2, log
