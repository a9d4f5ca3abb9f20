"""Celery 5.7 as celeriac's peer in tests: its virtualenv, its worker started from its own
CLI, and scripts run with its Python. Celery cannot be imported beside celeriac, so it only
ever runs in child processes. A project that runs on both sides reads ``INTEROP_SIDE``
(``"celery"`` or ``"celeriac"``) to know which library to import.

Celery's virtualenv is ``CELERIAC_CELERY_VENV`` (``/work/celery-ref/.venv`` by default);
the tests that need it are skipped without it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.workers import ROOT

CELERY_VENV = Path(os.environ.get("CELERIAC_CELERY_VENV", "/work/celery-ref/.venv"))
CELERY_PYTHON = CELERY_VENV / "bin" / "python"
SIDE = "INTEROP_SIDE"
# Gossip, mingle and heartbeats talk to the other Celery workers; none of these tests
# needs them, and mingle holds a starting worker back a second or more.
QUIET_FLAGS = ("--without-gossip", "--without-mingle", "--without-heartbeat")


def skip_without_celery() -> None:
    """Skip the calling test module when there is no Celery virtualenv."""
    if not CELERY_PYTHON.exists():
        pytest.skip(
            f"no Celery virtualenv at {CELERY_VENV} (set CELERIAC_CELERY_VENV)",
            allow_module_level=True,
        )


def celery_env(env: dict[str, str], *paths: Path | str) -> dict[str, str]:
    """``env`` for a Celery process: the project on ``paths``, celeriac nowhere."""
    return {**env, SIDE: "celery", "PYTHONPATH": os.pathsep.join(map(str, paths))}


def celeriac_env(env: dict[str, str], *paths: Path | str) -> dict[str, str]:
    """``env`` for a celeriac process of this tree: its ``src``, the repository (for
    ``tests.*`` projects) and ``paths``."""
    where = [str(ROOT / "src"), str(ROOT), *map(str, paths)]
    return {**env, SIDE: "celeriac", "PYTHONPATH": os.pathsep.join(where)}


class CeleryWorker:
    """``celery -A <app> worker`` from Celery's virtualenv, in a process group of its own
    (so its pool children die with it), its log collected. ``args`` default to the solo
    pool."""

    def __init__(self, cwd: Path, env: dict[str, str], *args: str, app: str = "interop") -> None:
        self.log: list[str] = []
        self._ready = threading.Event()
        command = [str(CELERY_VENV / "bin" / "celery"), "-A", app, "worker", "-l", "info",
                   *QUIET_FLAGS, *(args or ("-P", "solo"))]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, start_new_session=True,
        )  # fmt: skip
        self.pid = self.process.pid
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @classmethod
    def started(
        cls, cwd: Path, env: dict[str, str], *args: str, app: str = "interop"
    ) -> CeleryWorker:
        worker = cls(cwd, env, *args, app=app)
        worker.wait_ready()
        return worker

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)
            if line.rstrip().endswith(" ready."):  # "celery@host ready."
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting either way

    def wait_ready(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.kill()
            raise AssertionError("the Celery worker did not start:\n" + self.text)

    @property
    def text(self) -> str:
        return "".join(self.log)

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """A warm shutdown (SIGTERM): runs in progress finish; killed after ``timeout``."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        self.kill()

    def kill(self) -> None:
        """SIGKILL to the worker and its pool children at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(10)
        self._reader.join(10)
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()


def run_celery_script(cwd: Path, env: dict[str, str], *args: str, timeout: float = 60) -> Any:
    """Run ``python ARGS`` with Celery's Python; the JSON its last line of output holds."""
    done = subprocess.run(
        [str(CELERY_PYTHON), *args], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"the Celery script failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def imported_as_celeriac(path: Path, module: str, settings: dict[str, str]) -> Iterator[ModuleType]:
    """The project ``module`` in ``path`` imported here as celeriac's side, with
    ``settings`` in the environment; closed and forgotten afterwards."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**settings, SIDE: "celeriac"}.items():
            patch.setenv(name, value)
        patch.syspath_prepend(str(path))
        sys.modules.pop(module, None)
        imported = importlib.import_module(module)
        try:
            yield imported
        finally:
            imported.app.close()
            sys.modules.pop(module, None)


def delete_keys(redis_url: str, prefix: str) -> None:
    """Every key under ``prefix``."""
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
