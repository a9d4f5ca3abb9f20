"""``celeriac graph workers``: the DOT graph of two real workers on Redis (found with
inspect stats), and of workers named on the command line, shortened as Celery's is."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from celeriac.cli import cli
from celeriac.cli.graph import abbreviate
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


def test_running_workers_are_drawn(tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]) -> None:
    _, env = proj
    one = WorkerProcess.started(tmp_path, env, "-P", "threads", "-c", "2", "-n", "g1@%h")
    two = WorkerProcess.started(tmp_path, env, "-P", "threads", "-c", "5", "-n", "g2@%h")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "proj", "graph", "workers"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
    finally:
        assert one.stop() == 0 and two.stop() == 0
    dot = done.stdout
    assert dot.startswith("digraph workers {") and dot.rstrip().endswith("}")
    assert '"worker-0" [label="g1@' in dot and '"worker-1" [label="g2@' in dot
    assert '"worker-0" -> "broker"' in dot and '"worker-1" -> "backend"' in dot
    assert '"broker" [label="redis://' in dot
    # g1 has two processes; g2's five are shortened to three: P1, one for the rest, P5
    assert '"worker-0-p1" [label="P₂"' in dot and '"worker-0-p2"' not in dot
    assert '"worker-1-p1" [label="P⎨…₃⎬"' in dot and '"worker-1-p2" [label="P₅"' in dot
    if shutil.which("dot"):  # Graphviz reads it
        subprocess.run(["dot", "-Tsvg"], input=dot, text=True, capture_output=True, check=True)


def test_named_workers_and_arguments(proj: tuple[ModuleType, dict[str, str]]) -> None:
    runner = CliRunner()
    args = ["-A", "proj", "graph", "workers", "nodes:a,b,c,d,e,f", "threads:1,1,1,1,1,3",
            "wmax:4", "generic", "backend:redis://:secret@h/1"]  # fmt: skip
    done = runner.invoke(cli, args)
    assert done.exit_code == 0, done.output
    nodes = [line.split() for line in done.output.splitlines() if "label=" in line]
    labels = [words[1].split('"')[1] for words in nodes if words[0].count("-") == 1]
    assert labels == ["a", "b", "W⎨…₃⎬", "f"]
    assert 'label="Broker (redis://)"' in done.output and "secret" not in done.output
    assert '"worker-2-p0"' not in done.output  # the ellipsis has no processes
    assert '"worker-3-p2" [label="P₃"' in done.output
    numbered = runner.invoke(cli, ["-A", "proj", "graph", "workers", "nodes:x,y", "enumerate"])
    assert 'label="Worker₁"' in numbered.output and 'label="Worker₂"' in numbered.output
    wrong = runner.invoke(cli, ["-A", "proj", "graph", "workers", "colour:red"])
    assert wrong.exit_code == 64 and "unknown argument 'colour:red'" in wrong.output
    absent = runner.invoke(cli, ["-A", "proj", "graph", "bootsteps"])
    assert absent.exit_code != 0


def test_abbreviate() -> None:
    assert abbreviate(["a", "b"], 4, "W") == ["a", "b"]
    assert abbreviate(list("abcdef"), 0, "W") == list("abcdef")
    assert abbreviate(list("abcdef"), 1, "W") == ["a", "W⎨…₄⎬", "f"]  # three at least
