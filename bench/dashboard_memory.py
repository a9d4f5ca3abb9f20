"""The dashboard's memory while many tasks pass: its RSS stays flat once its caps are full.

    .venv/bin/python -m bench.dashboard_memory -n 1000000

Starts a real ``celeriac dashboard`` process on Redis DB 14 (flushed first: not while
``python -m bench`` runs), then publishes the events of ``n`` tasks to the event stream
(task-received, task-started, task-succeeded per task, 1,000 events a payload, with a
worker's heartbeats), paced so the dashboard keeps up (it is waited for after each step
by the event count ``/api/overview`` reports). The dashboard's RSS is read after each
tenth of the tasks; the figure is the change from the first reading after the task cap
(10,000) was full to the last. Needs the ``dashboard`` extra and psutil.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import redis

from celeriac import Celery
from celeriac.events.event import encode

ROOT = Path(__file__).resolve().parents[1]
URL = "redis://127.0.0.1:6379/14"
PROJECT = f"from celeriac import Celery\napp = Celery('bench', broker={URL!r})\n"
BATCH = 1000  # events per payload, as a busy worker sends them
WORKER = "bench-worker@host"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def overview(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/overview", timeout=10) as answer:
        return json.loads(answer.read())


def wait_for_events(port: int, count: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while int(overview(port)["events"]) < count:
        if time.monotonic() > deadline:
            raise SystemExit(f"the dashboard did not see {count} events in {timeout:g} s")
        time.sleep(0.05)  # reading the dashboard's own count: nothing to wait on


def task_events(first: int, count: int, now: float) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    for n in range(first, first + count):
        uuid = f"bench-{n:09d}"
        common = {"uuid": uuid, "hostname": WORKER, "timestamp": now, "clock": n}
        events.append({**common, "type": "task-received", "name": "bench.add",
                       "args": f"({n}, {n})", "kwargs": "{}", "retries": 0})  # fmt: skip
        events.append({**common, "type": "task-started", "pid": 1})
        events.append({**common, "type": "task-succeeded", "result": str(2 * n),
                       "runtime": 0.001})  # fmt: skip
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=200_000, help="tasks to pass (default 200,000)")
    options = parser.parse_args()
    redis.Redis.from_url(URL).flushdb()
    app = Celery("bench", broker=URL)
    topic = app.events.topic
    project = Path(tempfile.mkdtemp(prefix="celeriac-dashboard-bench-"))
    (project / "benchproj.py").write_text(PROJECT)
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(project)])}
    dashboard = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "benchproj", "dashboard", "--port", str(port)],
        cwd=project, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                overview(port)
                break
            except OSError:
                if time.monotonic() > deadline or dashboard.poll() is not None:
                    raise SystemExit("the dashboard did not start") from None
                time.sleep(0.1)
        process = psutil.Process(dashboard.pid)
        readings = run(app, topic, port, process, options.n)
    finally:
        dashboard.terminate()
        dashboard.wait(15)
        app.close()
    report(readings, options.n)


def run(app: Celery, topic: object, port: int, process: psutil.Process,
        n: int) -> list[tuple[int, float]]:  # fmt: skip
    sent_events = int(overview(port)["events"])
    step, per_payload = max(n // 10, 1), BATCH // 3
    readings = [(0, process.memory_info().rss / 2**20)]
    started = time.perf_counter()
    done = 0
    while done < n:
        stop = min(done + step, n)
        while done < stop:
            count = min(per_payload, stop - done)
            now = time.time()
            beat = {"type": "worker-heartbeat", "hostname": WORKER, "timestamp": now,
                    "freq": 2.0, "active": 0, "processed": done, "pool_size": 4}  # fmt: skip
            events = [beat, *task_events(done, count, now)]
            app.broker.publish_topic(topic, encode(events))
            sent_events += len(events)
            done += count
            wait_for_events(port, sent_events)  # paced: the stream keeps 2,000 payloads
        readings.append((done, process.memory_info().rss / 2**20))
        rate = done / (time.perf_counter() - started)
        print(f"{done:>9,} tasks  RSS {readings[-1][1]:7.1f} MiB  ({rate:,.0f} tasks/s)")
    return readings


def report(readings: list[tuple[int, float]], n: int) -> None:
    full = next(((count, rss) for count, rss in readings if count >= 10_000), readings[-1])
    last = readings[-1]
    change = (last[1] - full[1]) / full[1] * 100
    print(f"\nRSS after {full[0]:,} tasks (cap of 10,000 full): {full[1]:.1f} MiB; "
          f"after {last[0]:,}: {last[1]:.1f} MiB; change {change:+.1f} %")  # fmt: skip


if __name__ == "__main__":
    main()
