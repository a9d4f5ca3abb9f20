"""A real worker whose stderr is a terminal colours its warning lines, as Celery's;
``celeriac -C`` (``--no-color``) keeps them plain."""

from __future__ import annotations

import os
import pty
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.workers import project_env

YELLOW = "\033[1;33m"


def _run_on_a_terminal(project: Path, env: dict[str, str], *top: str) -> str:
    """Start a solo worker on a pseudo-terminal, stop it with SIGTERM once it is ready
    (a warning line), and return everything it wrote."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "proj", *top, "worker", "-l", "info",
         "-P", "solo"],
        cwd=project, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower,
    )  # fmt: skip
    os.close(follower)
    out: list[str] = []
    ready = threading.Event()

    def read() -> None:
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the worker exited: the terminal is gone
                break
            if not chunk:
                break
            out.append(chunk.decode(errors="replace"))
            if " ready." in "".join(out):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(30), "".join(out)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, "".join(out)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        reader.join(10)
        os.close(leader)
    return "".join(out)


@pytest.fixture
def env(tmp_path: Path, redis_url: str, redis_prefix: str) -> dict[str, str]:
    return project_env(tmp_path, redis_url, redis_prefix)


def test_warnings_are_yellow_on_a_terminal(tmp_path: Path, env: dict[str, str]) -> None:
    text = _run_on_a_terminal(tmp_path, env)
    warm = next(line for line in text.splitlines() if "warm shutdown" in line)
    assert warm.startswith(YELLOW) and warm.rstrip().endswith("\033[0m")
    ready = next(line for line in text.splitlines() if " ready." in line)
    assert "\033[" not in ready  # INFO stays plain, as Celery's


def test_no_color_keeps_the_lines_plain(tmp_path: Path, env: dict[str, str]) -> None:
    text = _run_on_a_terminal(tmp_path, env, "--no-color")
    assert "warm shutdown" in text and YELLOW not in text
