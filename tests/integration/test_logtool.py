"""``celeriac logtool`` on the log of a real worker (Redis): the report counts what
ran, ``errors`` and ``traces`` show the task that raised; and on a written log, the tasks
that never ended and the other records, through click's runner."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from click.testing import CliRunner

from celeriac.cli import cli
from tests.integration.workers import PROJECT, TEST_ENV, WorkerProcess, project_env

BROKEN = """

@app.task
def broken():
    raise ValueError("no luck")
"""


@pytest.fixture
def proj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, dict[str, str]]]:
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "proj.py").write_text(PROJECT + BROKEN)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    module = importlib.import_module("proj")
    yield module, env
    module.app.close()
    sys.modules.pop("proj", None)


def logtool(cwd: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "logtool", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_real_worker_log_is_read(tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]) -> None:
    module, env = proj
    worker = WorkerProcess.started(tmp_path, env, "-P", "threads", "-c", "2")
    try:
        assert [module.add.delay(n, n).get(timeout=20) for n in range(3)] == [0, 2, 4]
        failed = module.broken.delay()
        with pytest.raises(ValueError):
            failed.get(timeout=20)
    finally:
        assert worker.stop() == 0
    logfile = tmp_path / "worker.log"
    logfile.write_text(worker.text)  # what the worker wrote to stderr (and its banner)
    report = logtool(tmp_path, env, "stats", str(logfile))
    assert "Task total: 4\nTask errors: 1\nTask success: 3\nTask completed: 4\n" in report
    assert "proj.add: 3\nproj.broken: 1" in report
    errors = logtool(tmp_path, env, "errors", str(logfile)).splitlines()
    assert len(errors) == 1 and f"Task proj.broken[{failed.id}] raised" in errors[0]
    traces = logtool(tmp_path, env, "traces", str(logfile))
    assert f"proj.broken[{failed.id}]" in traces and "ValueError: no luck" in traces
    assert logtool(tmp_path, env, "incomplete", str(logfile)) == ""
    assert "ready." in logtool(tmp_path, env, "debug", str(logfile))


LOG = """\
[2026-01-31 12:00:00,000: INFO/MainProcess] celeriac@host ready.
[2026-01-31 12:00:01,000: INFO/MainProcess] Task proj.add[a1] received
[2026-01-31 12:00:01,010: INFO/MainProcess] Task proj.add[a1] succeeded in 0.001s: 4
[2026-01-31 12:00:02,000: INFO/MainProcess] Task proj.slow[s1] received
[2026-01-31 12:00:03,000: INFO/MainProcess] Task proj.add[a2] received
[2026-01-31 12:00:03,100: INFO/MainProcess] Task proj.add[a2] retry: Retry in 1s
[2026-01-31 12:00:04,000: INFO/MainProcess] Task proj.add[a2] received
[2026-01-31 12:00:04,100: INFO/MainProcess] Task proj.add[a2] revoked
[2026-01-31 12:00:05,000: WARNING/MainProcess] proj.add[a3]: a line the task logged
"""


def test_written_log_incomplete_debug_and_stdin(tmp_path: Path) -> None:
    path = tmp_path / "w.log"
    path.write_text(LOG)
    runner = CliRunner()
    incomplete = runner.invoke(cli, ["logtool", "incomplete", str(path)])
    assert incomplete.exit_code == 0 and incomplete.output == "Did not complete: s1\n"
    debug = runner.invoke(cli, ["logtool", "debug", str(path)]).output.splitlines()
    assert [line.rsplit("] ", 1)[1] for line in debug] == [
        "celeriac@host ready.", "proj.add[a3]: a line the task logged"
    ]  # fmt: skip
    stats = runner.invoke(cli, ["logtool", "stats"], input=LOG).output  # standard input
    assert "Task total: 3\nTask errors: 1\nTask success: 1\nTask completed: 2\n" in stats
    assert "proj.add: 2\nproj.slow: 1" in stats  # a2 received twice: one task
    missing = runner.invoke(cli, ["logtool", "stats", str(tmp_path / "nope.log")])
    assert missing.exit_code != 0 and "does not exist" in missing.output
