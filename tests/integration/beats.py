"""Real ``celeriac beat`` processes for integration tests: a small project on disk, started
from the CLI as a user would, with every log line kept with the moment it arrived."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from tests.integration.workers import ROOT

PROJECT = textwrap.dedent(
    """
    import os

    from celeriac import Celery

    BROKER = os.environ["CELERIAC_TEST_BROKER"]
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": os.environ["CELERIAC_TEST_PREFIX"]}
    app = Celery("proj", broker=BROKER, broker_transport_options=options)
    app.conf.beat_lease_timeout = float(os.environ["BEAT_LEASE"])
    app.conf.beat_schedule = {
        "every-second": {
            "task": "proj.tick",
            "schedule": 1.0,
            "options": {"queue": os.environ["BEAT_QUEUE"]},
            "catchup": "all",
        },
    }


    @app.task(name="proj.tick")
    def tick():
        return "tick"
    """
)

SENT = "Scheduler: Sending due task"
LEADING = "leading now"
STEPPED_DOWN = "no longer leading"


def beat_env(
    project: Path, broker: str, prefix: str, namespace: str, **extra: str
) -> dict[str, str]:
    (project / "proj.py").write_text(PROJECT)
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(project)]),
        "CELERIAC_TEST_BROKER": broker,
        "CELERIAC_TEST_PREFIX": prefix,
        "CELERIAC_TEST_NAMESPACE": namespace,
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


class BeatProcess:
    """``celeriac -A proj beat -l info`` in a child process; ``lines`` holds
    ``(time.monotonic() on arrival, line)``."""

    def __init__(self, project: Path, env: dict[str, str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "proj", "beat", "-l", "info"],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self.stopped = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append((time.monotonic(), line))

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def last(self, text: str) -> float:
        """When the latest line containing ``text`` arrived (-inf: never)."""
        return max((at for at, line in list(self.lines) if text in line), default=float("-inf"))

    def after(self, moment: float) -> list[str]:
        return [line for at, line in list(self.lines) if at > moment]

    def pause(self) -> None:
        self.process.send_signal(signal.SIGSTOP)
        self.stopped = True

    def resume(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.stopped = False

    def stop(self, timeout: float = 30) -> None:
        if self.stopped:
            self.resume()
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        finally:
            if self.alive:
                self.process.kill()
                self.process.wait(10)
            self._reader.join(10)  # the reader sees the end of the log, never a closed pipe
            if self.process.stdout is not None and not self._reader.is_alive():
                self.process.stdout.close()

    @property
    def text(self) -> str:
        return "".join(line for _, line in self.lines)
