"""``Task.resultrepr_maxsize`` in a prefork worker on Redis: the child cuts the result's
repr at the task's size (not a fixed one) before it crosses to the main process, which
logs it."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.workers import TEST_ENV, WorkerProcess, project_env

LONG_RESULTS = textwrap.dedent(
    """

    @app.task(resultrepr_maxsize=12)
    def long_short():
        return "x" * 100


    @app.task(resultrepr_maxsize=3000)
    def long_kept():
        return "z" * 2500


    @app.task
    def long_default():
        return "y" * 2000
    """
)


def test_a_prefork_child_cuts_the_logged_result_at_the_tasks_size(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "proj.py").write_text((tmp_path / "proj.py").read_text() + LONG_RESULTS)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    proj = importlib.import_module("proj")
    worker = WorkerProcess.started(tmp_path, env, "-P", "prefork", "-c", "1")
    try:
        short, kept = proj.long_short.delay(), proj.long_kept.delay()
        default = proj.long_default.delay()
        assert short.get(timeout=15) == "x" * 100  # the result itself is whole
        assert kept.get(timeout=15) == "z" * 2500
        assert default.get(timeout=15) == "y" * 2000
        worker.wait_for_log(f"{default.id}] succeeded in")
    finally:
        worker.stop()
        proj.app.close()
        sys.modules.pop("proj", None)
    [short_line] = [line for line in worker.log if f"{short.id}] succeeded in" in line]
    assert short_line.rstrip().endswith(": '" + "x" * 8 + "...")
    [kept_line] = [line for line in worker.log if f"{kept.id}] succeeded in" in line]
    assert kept_line.rstrip().endswith(": '" + "z" * 2500 + "'")  # more than 1024: whole
    [default_line] = [line for line in worker.log if f"{default.id}] succeeded in" in line]
    assert default_line.rstrip().endswith("y" * (1024 - 4) + "...")  # Celery's 1024
