"""The embedded Redis outlives its worker, so the worker says where it runs and how to stop
it, ``celeriac embedded status|stop`` show and stop it, and the quick start stops the
server it started. Real processes throughout: worker, CLI commands and redis-server.

Each test points CELERIAC_EMBEDDED_DIR at its own temporary directory.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac.brokers import embedded
from celeriac.brokers.embedded import EmbeddedServer, embedded_broker_url
from tests.integration.test_embedded_broker import require_package, servers_on
from tests.integration.workers import ROOT, WorkerProcess

TIMEOUT = 60


@pytest.fixture
def state(embedded_state: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """This test's state directory for embedded servers; every server in it stopped after."""
    require_package()
    directory = embedded_state
    monkeypatch.setenv(embedded.ENV_DIR, str(directory))
    try:
        yield directory
    finally:
        for server in embedded.servers():
            server.stop()


def make_project(parent: Path, name: str) -> Path:
    project = parent / name
    project.mkdir()
    (project / "pyproject.toml").write_text(f'[project]\nname = "{name}"\n')
    return project


def celeriac(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m celeriac ARGS`` in ``cwd``, as a user types it there."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip


def test_the_worker_says_where_the_server_runs_and_the_commands_stop_it(
    state: Path, tmp_path: Path
) -> None:
    project = make_project(tmp_path, "shop")
    (project / "proj.py").write_text(
        textwrap.dedent(
            """
            from celeriac import Celery

            app = Celery("proj")  # no broker_url: the project's embedded Redis
            """
        )
    )
    worker = WorkerProcess(project, {**os.environ, "PYTHONPATH": str(ROOT / "src")},
                           "-P", "threads")  # fmt: skip
    try:
        worker.wait_ready()
    finally:
        assert worker.stop() == 0
    server = EmbeddedServer(project)
    pid = server.pid()
    assert pid is not None and servers_on(server.socket) == [pid]  # it outlived the worker
    [line] = [line for line in worker.log if line.startswith("  embedded ")]
    assert f"Redis pid {pid}, state in {server.dir}" in line
    assert f"stop it with 'celeriac embedded stop' (in {project})" in line

    (project / "scripts").mkdir()  # a subdirectory belongs to the same project
    shown = celeriac(project / "scripts", "embedded", "status")
    assert shown.returncode == 0, shown.stderr
    assert (
        shown.stdout == f"{project}: running (pid {pid}) at {server.url}, state in {server.dir}\n"
    )
    stopped = celeriac(project, "embedded", "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"{project}: stopped (pid {pid}); its data stays in {server.data}\n"
    assert servers_on(server.socket) == [] and server.pid() is None
    again = celeriac(project, "embedded", "status")
    assert again.returncode == 3
    assert again.stdout == f"{project}: not running, state in {server.dir}\n"


def test_stop_is_refused_while_another_process_is_connected_unless_forced(
    state: Path, tmp_path: Path
) -> None:
    import redis

    project = make_project(tmp_path, "busy")
    client = redis.Redis.from_url(embedded_broker_url(project))
    try:
        client.ping()  # a producer holding a connection
        refused = celeriac(project, "embedded", "stop")
        assert refused.returncode == 75
        assert "not stopped: 1 other connection(s) are open" in refused.stderr
        assert "pass --force" in refused.stderr
        assert EmbeddedServer(project).running()
        forced = celeriac(project, "embedded", "stop", "--force")
        assert forced.returncode == 0, forced.stderr
        assert not EmbeddedServer(project).running()
    finally:
        client.close()


def test_all_shows_and_stops_every_project_s_server(state: Path, tmp_path: Path) -> None:
    first, second = make_project(tmp_path, "one"), make_project(tmp_path, "two")
    never = make_project(tmp_path, "three")
    for project in (first, second):
        embedded_broker_url(project)
    shown = celeriac(never, "embedded", "status", "--all")
    assert shown.returncode == 0, shown.stderr
    lines = sorted(shown.stdout.splitlines())
    assert [line.split(":")[0] for line in lines] == [str(first), str(second)]
    assert all(re.search(r": running \(pid \d+\) at unix://", line) for line in lines)
    mine = celeriac(never, "embedded", "status")  # only this project's: never started
    assert mine.returncode == 3 and "not running (never started" in mine.stdout
    stopped = celeriac(never, "embedded", "stop", "--all")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.count(": stopped (pid ") == 2
    assert not EmbeddedServer(first).running() and not EmbeddedServer(second).running()
    assert celeriac(never, "embedded", "status", "--all").returncode == 3


def test_the_quickstart_stops_the_server_it_started(state: Path) -> None:
    env = {**os.environ, "CELERIAC_VENV": sys.prefix, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        ["bash", str(ROOT / "examples" / "quickstart" / "run.sh")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "add: [0, 2, 4, 6, 8]" in done.stdout
    server = EmbeddedServer(ROOT)
    assert f"{ROOT}: stopped (pid " in done.stdout
    assert servers_on(server.socket) == [] and not server.running()
