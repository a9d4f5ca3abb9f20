"""Worker options as users give them, on real Redis: ``-X`` leaves queues out of those a
worker consumes, ``--heartbeat-interval`` sets how often ``worker-heartbeat`` events come
(their ``freq`` says so), and ``celeriac -q`` starts a worker without its banner and
``status`` without its summary line."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

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


def test_exclude_queues_leaves_them_out(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-Q", "celery,other", "-Q", "third", "-X", "other,third"
    )
    try:
        assert banner_queues(worker.text) == "celery"
        assert module.add.apply_async((1, 2), queue="celery").get(timeout=20) == 3
    finally:
        assert worker.stop() == 0


def banner_queues(text: str) -> str:
    line = next(line for line in text.splitlines() if line.strip().startswith("queues"))
    return line.split(None, 1)[1].strip()


def test_heartbeat_interval_sets_the_heartbeat_events_pace(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    worker = WorkerProcess.started(tmp_path, env, "-P", "solo", "-n", "hb@%h",
                                   "--heartbeat-interval", "1")  # fmt: skip
    try:
        beats: list[dict[str, Any]] = []
        receiver = module.app.events.Receiver(module.app, history=True)
        for event in receiver.itercapture(timeout=15, wakeup=False):
            if event["type"] == "worker-heartbeat" and event["hostname"].startswith("hb@"):
                beats.append(event)
            if len(beats) == 3:
                break
    finally:
        assert worker.stop() == 0
    assert len(beats) == 3 and {beat["freq"] for beat in beats} == {1}
    gaps = [
        later["timestamp"] - earlier["timestamp"] for earlier, later in itertools.pairwise(beats)
    ]
    assert all(0.5 < gap < 1.8 for gap in gaps), gaps  # every second, not every two


def test_quiet_starts_a_worker_without_its_banner(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    process = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-q", "-A", "proj", "worker", "-l", "info",
         "-P", "solo"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:  # until the worker says it is ready
            lines.append(line)
            if " ready." in line:
                break
        assert module.add.delay(2, 3).get(timeout=20) == 5
        status = [sys.executable, "-m", "celeriac", "-A", "proj", "status"]
        loud = subprocess.run(status, cwd=tmp_path, env=env, capture_output=True, text=True)
        quiet = subprocess.run(  # -q: the replies only
            [*status[:3], "-q", *status[3:]], cwd=tmp_path, env=env, capture_output=True,
            text=True,
        )  # fmt: skip
        assert "1 node online." in loud.stdout and "OK" in quiet.stdout
        assert "online" not in quiet.stdout
    finally:
        process.terminate()
        process.wait(30)
        process.stdout.close()
    assert any(" ready." in line for line in lines), "".join(lines)
    assert not any("registered tasks" in line or "queues" in line for line in lines), lines
