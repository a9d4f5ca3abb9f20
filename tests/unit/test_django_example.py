"""examples/django runs with one command, as the quick start does: a Django view sends a
task on commit, a real worker with beat (-B) on the embedded Redis confirms the order and
beat's periodic task ships it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]


def test_the_django_example_runs_a_real_worker(tmp_path: Path) -> None:
    pytest.importorskip("django")
    embedded = pytest.importorskip("celeriac.brokers.embedded")
    if not embedded.available():
        service_missing("the embedded Redis", "celeriac[embedded] is not installed")
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONWARNINGS", "DJANGO_SETTINGS_MODULE")
    }
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH")) if p),
        CELERIAC_EMBEDDED_DIR=str(tmp_path),
        CELERIAC_VENV=sys.prefix,
    )
    try:
        done = subprocess.run(
            ["bash", str(ROOT / "examples" / "django" / "run.sh")],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
    finally:
        stopper = "from celeriac.brokers.embedded import stop_embedded as s; s()"
        subprocess.run([sys.executable, "-c", stopper], cwd=ROOT, env=env, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "worker: order 1 confirmed (42)" in done.stdout
    assert "task id stored with the order: True" in done.stdout
    assert "order 1: shipped" in done.stdout
    assert "orders.tasks.confirm_order" in done.stdout  # found by autodiscover_tasks()
    assert "ready." in done.stderr and "warm shutdown" in done.stderr
