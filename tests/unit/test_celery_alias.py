"""The ``celery`` console script: celeriac's command line under Celery's name, which gives
way to the real Celery when that is installed in the same environment.

Each case runs the script in its own interpreter. "The real Celery" is a distribution
written to a temporary directory on the child's path (its metadata and a ``celery``
package whose entry point reports how it was called), so no Celery is installed here.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(sys.prefix) / "bin" / "celery"
ALIAS = "import sys; from celeriac.cli.alias import main; sys.argv[0] = 'celery'; main()"


def run_alias(*args: str, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The alias's ``main`` as the script calls it, with ``path`` first on sys.path."""
    entries = [str(path)] if path else []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*entries, str(ROOT / "src")])}
    return subprocess.run(
        [sys.executable, "-c", ALIAS, *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def fake_celery(directory: Path, entry_point: str = "celery.__main__:main") -> Path:
    """A Celery distribution (metadata, package, console script entry) in ``directory``."""
    package = directory / "celery"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(
        "import sys\n\n\ndef main():\n    print('the real celery ran with', sys.argv[1:])\n"
        "    return 3\n"
    )
    info = directory / "celery-5.9.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: celery\nVersion: 5.9.0\n")
    (info / "entry_points.txt").write_text(f"[console_scripts]\ncelery = {entry_point}\n")
    return directory


def without_celery() -> None:
    try:
        importlib.metadata.distribution("celery")
    except importlib.metadata.PackageNotFoundError:
        return
    pytest.skip("Celery is installed in this environment: the alias gives way to it")


def test_the_celeriac_distribution_declares_the_celery_script() -> None:
    scripts = importlib.metadata.distribution("celeriac").entry_points.select(
        group="console_scripts"
    )
    assert {ep.name: ep.value for ep in scripts}.get("celery") == "celeriac.cli.alias:main", (
        "reinstall the checkout (pip install -e .) to get the celery script"
    )


def test_without_celery_the_alias_is_celeriac_s_command_line() -> None:
    without_celery()
    version = run_alias("--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("celeriac, version ")
    misplaced = run_alias("worker", "-A", "proj")
    assert misplaced.returncode == 64
    assert "-A is an option of 'celery', not of 'worker'" in misplaced.stderr
    assert "celery -A proj worker" in misplaced.stderr


def test_the_installed_script_runs_the_alias() -> None:
    without_celery()
    if not SCRIPT.is_file():
        pytest.fail(f"{SCRIPT} is missing: reinstall the checkout (pip install -e .)")
    done = subprocess.run(
        [str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: celery [OPTIONS] COMMAND")
    assert "embedded" in done.stdout and "worker" in done.stdout


def test_with_celery_installed_the_alias_runs_celery_s_own_command(tmp_path: Path) -> None:
    done = run_alias("-A", "proj", "worker", "-l", "info", path=fake_celery(tmp_path))
    assert done.stdout == "the real celery ran with ['-A', 'proj', 'worker', '-l', 'info']\n"
    assert done.returncode == 3, done.stderr  # Celery's exit status, passed on


def test_a_celery_whose_command_cannot_load_is_reported_not_replaced(tmp_path: Path) -> None:
    done = run_alias("--version", path=fake_celery(tmp_path, "celery.missing:main"))
    assert done.returncode == 1
    assert "Celery 5.9.0 is installed here, so 'celery' is its command" in done.stderr
    assert "pip install --force-reinstall celery" in done.stderr
    assert "celeriac, version" not in done.stdout
