"""The suite's ``alone`` marker: under pytest-xdist, such a test runs while no other does."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CONFTEST = "from tests.alone import pytest_configure, pytest_runtest_protocol, pytest_unconfigure\n"

# Each test records when it ran; its sleep is the work whose overlap is under test.
TESTS = textwrap.dedent(
    """
    import json, os, time
    import pytest

    def spend(name):
        start = time.monotonic()
        time.sleep(0.3)
        with open(os.path.join(os.environ["SPANS"], name), "w") as f:
            json.dump([start, time.monotonic()], f)

    @pytest.mark.parametrize("n", range(8))
    def test_busy(n):
        spend(f"busy-{n}")

    @pytest.mark.alone
    @pytest.mark.parametrize("n", range(2))
    def test_timed(n):
        spend(f"alone-{n}")
    """
)


def test_a_test_marked_alone_overlaps_no_other_test(tmp_path: Path) -> None:
    project, spans = tmp_path / "project", tmp_path / "spans"
    project.mkdir()
    spans.mkdir()
    (project / "conftest.py").write_text(CONFTEST)
    (project / "test_work.py").write_text(TESTS)
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n  alone: runs alone\n")
    env = {**os.environ, "SPANS": str(spans), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "3", "-p", "no:cacheprovider", str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ran = {path.name: json.loads(path.read_text()) for path in spans.iterdir()}
    assert len(ran) == 10
    for name, (start, end) in ran.items():
        if not name.startswith("alone"):
            continue
        beside = [other for other, (s, e) in ran.items() if other != name and s < end and e > start]
        assert beside == [], f"{name} ran beside {beside}"
    busy = sorted(span for name, span in ran.items() if name.startswith("busy"))
    overlapping = any(b[0] < a[1] for a, b in itertools.pairwise(busy))
    assert overlapping, "the other tests still run in parallel with each other"
