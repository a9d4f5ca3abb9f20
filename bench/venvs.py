"""One virtualenv per peer under ``bench/.venvs/<peer>``, installed from PyPI with pip.

celeriac's workers and producer get one too, with what a user installs
(``celeriac[redis,amqp]``) and no more: the repository's ``.venv`` carries the test
extras, and with ``opentelemetry-sdk`` installed redis-py 8 imports its metrics SDK in
every process, which would count against celeriac's memory alone. Its code comes from
the working tree or a snapshot on ``PYTHONPATH`` (``run.celeriac_source``), so the venv
is made once. Every peer gets ``hiredis`` too, so no tool is faster or slower only
because of redis-py's parser (celeriac's ``redis`` extra brings hiredis).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENVS_DIR = BENCH_DIR / ".venvs"

# What a user would install for each tool, plus the instrument (redis-py) and hiredis.
REQUIREMENTS: dict[str, list[str]] = {
    "celeriac": [f"{REPO}[redis,amqp]"],
    "celery": ["celery[redis]>=5,<6", "hiredis"],
    "dramatiq": ["dramatiq[redis,rabbitmq]", "hiredis"],
    "huey": ["huey", "redis", "hiredis"],
    "rq": ["rq", "hiredis"],
    "arq": ["arq", "hiredis"],
    "taskiq": ["taskiq", "taskiq-redis", "hiredis"],
    # Not queues: Celery's monitors, which the tests point at celeriac workers.
    "flower": ["celery[redis]>=5,<6", "flower>=2.2,<3"],
    "celery-exporter": ["celery[redis]>=5,<6", "celery-prometheus-exporter==1.7.0"],
}


def base_python() -> str:
    """The interpreter the peer venvs are made from: the one behind this venv."""
    return getattr(sys, "_base_executable", None) or sys.executable


def python_for(peer: str) -> str:
    return str(VENVS_DIR / peer / "bin" / "python")


def ensure(peer: str, *, upgrade: bool = False, log: Path | None = None) -> str:
    """Create and install ``peer``'s venv if missing (or ``upgrade``); its python path."""
    venv = VENVS_DIR / peer
    python = venv / "bin" / "python"
    marker = venv / ".installed"
    if marker.exists() and not upgrade:
        return str(python)
    VENVS_DIR.mkdir(parents=True, exist_ok=True)
    out = open(log, "a") if log else None  # noqa: SIM115 - closed below
    try:
        if not python.exists():
            subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
        cmd = [str(python), "-m", "pip", "install", "-q", "--upgrade", *REQUIREMENTS[peer]]
        subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()
    marker.write_text(" ".join(REQUIREMENTS[peer]) + "\n")
    return str(python)


def main() -> None:
    peers = sys.argv[1:] or list(REQUIREMENTS)
    for peer in peers:
        print(f"{peer}: {ensure(peer, upgrade=True)}", flush=True)


if __name__ == "__main__":
    main()
