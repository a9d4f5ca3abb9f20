"""The benchmark harness (bench/): its adapters stay celeriac-free, its report renders,
and its quick mode runs end to end against a real celeriac worker for a few hundred
tasks (Redis DB 13, so a benchmark run on DB 14 and the tests on DB 15 are left alone).
The figures are printed, never checked: no thresholds in tests."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import service_missing

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
SMOKE_REDIS_URL = "redis://127.0.0.1:6379/13"
FIGURES = ("enqueue_per_call", "enqueue_bulk", "drain_incr", "drain_noop", "drain_sleep",
           "lat_idle_p50_ms", "rss_mb", "redis_bytes_per_task")  # fmt: skip


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_only_the_celeriac_adapter_imports_celeriac() -> None:
    """The driver and the peers' adapters run in the peers' venvs, without celeriac."""
    files = [BENCH / "driver.py", *sorted((BENCH / "peers").glob("*.py"))]
    offenders = [
        path.name for path in files if path.name != "celeriac.py" and "celeriac" in _imports(path)
    ]
    assert offenders == []


def test_every_adapter_has_the_same_shape() -> None:
    for path in sorted((BENCH / "peers").glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {
            getattr(node, "name", None) or getattr(getattr(node, "targets", [None])[0], "id", None)
            for node in tree.body
        }
        assert {"Client", "worker_command", "describe", "PACKAGES", "SETTINGS"} <= names, path


def test_the_report_renders_from_results() -> None:
    sys.path.insert(0, str(ROOT))
    try:
        from bench.report import render
        from bench.run import percentile, summarize
    finally:
        sys.path.remove(str(ROOT))
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert percentile([float(i) for i in range(100)], 0.99) == 98.0
    runs = {
        "celeriac-threads": [{"drain_incr": 100.0, "rep": 0}, {"drain_incr": 300.0, "rep": 1}],
        "celery-threads": [{"drain_incr": 50.0, "rep": 0}, {"drain_incr": 50.0, "rep": 1}],
    }
    results = {
        "command": ".venv/bin/python -m bench",
        "started": "2026-01-01 00:00:00",
        "duration_s": 60.0,
        "options": {"n": 10, "reps": 2, "depths": [], "redis_url": "redis://x/14"},
        "machine": {"cpu_model": "cpu", "cpus": 2, "memory_gb": 1, "platform": "p",
                    "python": "3", "redis": "7", "rabbitmq": "3",
                    "load_average_at_start": [0, 0, 0], "load_average_at_end": [0, 0, 0]},
        "celeriac": {"source": "working tree", "commit": "0" * 40, "amqp": "available",
                     "rabbitmq_vhost": "v"},
        "configs": {
            "celeriac-threads": {"label": "celeriac threads 8", "peer": "celeriac",
                                 "broker": "redis"},
            "celery-threads": {"label": "Celery threads 8", "peer": "celery", "broker": "redis"},
        },
        "runs": runs,
        "summary": summarize(runs),
    }  # fmt: skip
    text = render(results)
    assert "| celeriac threads 8 | — | — | 200 (100\u2013300) |" in text
    assert "| Celery threads 8 | — | — | 4.00 |" in text  # the ratio celeriac / peer


@pytest.mark.requires_service("redis")
def test_quick_mode_runs_a_real_worker(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    try:
        redis.Redis.from_url(SMOKE_REDIS_URL, socket_connect_timeout=2).ping()
    except (redis.RedisError, OSError) as exc:
        service_missing("Redis", f"{SMOKE_REDIS_URL} did not answer ({exc})")
    env = dict(os.environ)
    env.pop("PYTHONWARNINGS", None)
    command = [
        sys.executable, "-m", "bench", "--quick", "--no-amqp", "-n", "300", "--pools",
        "threads", "--depths", "", "--latency-samples", "10", "--sporadic-samples", "1",
        "--sleep-n", "100", "--drain-timeout", "30", "--redis-url", SMOKE_REDIS_URL,
        "--out-dir", str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=100, check=False
    )
    print(done.stdout)  # the figures, for the log
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    run = results["runs"]["celeriac-threads"][0]
    assert run["errors"] == [], run["errors"]
    for figure in FIGURES:
        assert run[figure] > 0, figure
    # The machine's idle hand-off floor is measured beside it, and shown with the targets.
    [floor] = results["runs"]["floor-redis"]
    assert 0 < floor["lat_idle_p50_ms"] <= floor["lat_idle_p99_ms"]
    report = (tmp_path / "RESULTS.md").read_text()
    assert "## Figures" in report
    assert "idle hand-off floor, no task queue: Redis" in report
    assert "the machine's floor" in report


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        ([], "every"),
        (["--peers", ""], []),
        (["--peers", "celery,dramatiq"], ["celery", "dramatiq"]),
        (["--quick", "--peers", "celery"], []),
    ],
)
def test_the_peers_measured_are_every_one_by_default_and_none_when_given_empty(
    argv: list[str], expected: Any
) -> None:
    from bench import run

    chosen = run.chosen_peers(run.parse(argv))
    assert chosen == (list(run.PEERS) if expected == "every" else expected)


def test_celeriac_on_rabbitmq_is_also_measured_on_fifo_queues_outside_quick_mode() -> None:
    """The peers' RabbitMQ queues are first in, first out: a full run measures celeriac on
    such queues too (its default has priority levels); the quick mode leaves that out."""
    from bench import run

    full = {c.key: c for c in run.all_configs(["threads"], [], ["threads"])}
    fifo = full["celeriac-amqp-threads-fifo"]
    assert (fifo.broker, fifo.pool, fifo.concurrency) == ("amqp", "threads", 8)
    assert dict(fifo.env) == {"BENCH_QUEUE_MAX_PRIORITY": "none"}
    assert full["celeriac-amqp-threads"].env == ()  # the default row keeps the defaults
    quick = [c.key for c in run.all_configs(["threads"], [], ["threads"], fifo=False)]
    assert "celeriac-amqp-threads-fifo" not in quick and "celeriac-amqp-threads" in quick


def test_an_unknown_peer_is_refused_by_name() -> None:
    from bench import run

    with pytest.raises(SystemExit, match="unknown peers: nope"):
        run.chosen_peers(run.parse(["--peers", "celery,nope"]))


def test_the_instruction_count_is_read_from_callgrind_s_log(tmp_path: Path) -> None:
    from bench.profile import collected

    log = tmp_path / "cg.log"
    log.write_text(
        "==41== Callgrind, a call-graph generating cache profiler\n"
        "==41== Events    : Ir\n==41== Collected : 2703911447\n==41== \n"
        "==41== I   refs:      2,703,911,447\n"
    )
    assert collected(log) == 2_703_911_447
    with log.open("a") as more:  # a prefork child's count, in the same log
        more.write("==42== Events    : Ir\n==42== Collected : 1000\n")
    assert collected(log) == 2_703_912_447
    log.write_text("==41== Callgrind, a call-graph generating cache profiler\n")
    with pytest.raises(SystemExit, match="no instruction count"):
        collected(log)


def test_the_channel_layout_probe_drains_each_layout_and_leaves_no_queue(amqp_url: str) -> None:
    """``bench.amqp_channels`` measures every layout asked for on a real RabbitMQ, and
    removes its queue after each."""
    import asyncio

    import aiormq

    done = subprocess.run(
        [sys.executable, "-m", "bench.amqp_channels", "-n", "200", "--layouts", "1x4,2x2",
         "--amqp-url", amqp_url],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines] == [
        "1 channel(s) x prefetch 4",
        "2 channel(s) x prefetch 2",
    ]
    assert all(" messages/s, " in line and line.endswith("us CPU per message") for line in lines)

    async def queue_exists() -> bool:
        connection = await aiormq.connect(amqp_url)
        try:
            channel = await connection.channel()
            await channel.queue_declare("celeriac-bench-channels", passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        finally:
            await connection.close()
        return True

    assert not asyncio.run(queue_exists())
