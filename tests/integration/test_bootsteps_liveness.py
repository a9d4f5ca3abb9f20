"""The Kubernetes liveness-probe recipe on a real worker started from the command line:
a user ``StartStopStep`` touching a heartbeat file with ``worker.timer``, configured by
the app's own command-line options (``app.user_options``)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from celeriac.worker import exitcodes
from tests.integration.workers import WorkerProcess, project_env

LIVENESS = textwrap.dedent(
    """
    import os
    import time
    from pathlib import Path

    import click

    from celeriac import Celery, bootsteps, signals

    URL = os.environ["CELERIAC_TEST_REDIS"]
    app = Celery("probe", broker=URL, backend=URL,
                 broker_transport_options={"key_prefix": os.environ["CELERIAC_TEST_PREFIX"]})
    app.user_options["preload"].add(click.Option(["--probe-dir"], required=True))
    app.user_options["worker"].add(click.Option(["--heartbeat-every"], type=float, default=1.0))
    PROBE = {}


    @signals.user_preload_options.connect
    def on_preload(sender=None, app=None, options=None, **kwargs):
        PROBE["dir"] = Path(options["probe_dir"])


    class LivenessProbe(bootsteps.StartStopStep):
        requires = {"celery.worker.components:Timer"}

        def __init__(self, worker, heartbeat_every=None, **kwargs):
            self.every = heartbeat_every
            self.file = PROBE["dir"] / "heartbeat"
            self.tref = None

        def start(self, worker):
            self.tref = worker.timer.call_repeatedly(self.every, self.beat, (worker,), priority=10)

        def beat(self, worker):
            self.file.write_text(f"{worker.hostname} {time.monotonic()}")

        def stop(self, worker):
            self.tref.cancel()
            self.file.unlink(missing_ok=True)
            (PROBE["dir"] / "stopped").write_text("clean")


    app.steps["worker"].add(LivenessProbe)
    """
)


def test_a_liveness_step_beats_while_the_worker_runs_and_cleans_up_at_stop(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "probe.py").write_text(LIVENESS)
    probe = tmp_path / "probe-dir"
    probe.mkdir()
    heartbeat = probe / "heartbeat"
    worker = WorkerProcess.started(
        tmp_path, env, "--probe-dir", str(probe), "--heartbeat-every", "0.2",
        "-P", "prefork", "-c", "1", "-n", "probe@test", app="probe",
    )  # fmt: skip
    try:
        beats = set()
        deadline = time.monotonic() + 10
        while len(beats) < 3:  # three different beats: it repeats every 0.2 s
            assert time.monotonic() < deadline, worker.text
            if heartbeat.exists():
                beats.add(heartbeat.read_text())
                beats.discard("")  # read while the step rewrote it
            time.sleep(0.05)  # polling the file the probe reads
        assert all(beat.startswith("probe@test ") for beat in beats)
        assert not (probe / "stopped").exists()
    finally:
        code = worker.stop()
    assert code == exitcodes.EX_OK, worker.text
    assert not heartbeat.exists() and (probe / "stopped").read_text() == "clean"


def test_the_user_options_are_in_the_worker_help(tmp_path: Path, redis_url: str,
                                                 redis_prefix: str) -> None:  # fmt: skip
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "probe.py").write_text(LIVENESS)
    shown = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "probe", "worker", "--help"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "--probe-dir" in shown.stdout and "--heartbeat-every" in shown.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "probe", "worker"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert missing.returncode == exitcodes.EX_USAGE
    assert "Missing option '--probe-dir'" in missing.stderr
