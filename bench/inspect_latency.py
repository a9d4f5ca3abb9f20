"""Inspect latency: p50/p99 of ``app.control.inspect().ping()`` round trips against N
worker processes (default 20, ``-P solo``), on Redis or RabbitMQ.

    .venv/bin/python -m bench.inspect_latency                 # Redis, 20 workers, 200 rounds
    .venv/bin/python -m bench.inspect_latency --broker amqp   # RabbitMQ (guest@127.0.0.1)

A round trip is the time from the call until every worker's reply arrived
(``inspect(limit=N).ping()`` returns as soon as the N-th reply is in); each reply's own
arrival time is recorded too. Redis DB 14 under a key prefix of the run's own; RabbitMQ
under a namespace of its own. Workers are started from the command line, as a user would.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = textwrap.dedent(
    """
    import os
    from celeriac import Celery

    BROKER = os.environ["BENCH_BROKER"]
    key = "namespace" if BROKER.startswith("amqp") else "key_prefix"
    app = Celery("latency", broker=BROKER,
                 broker_transport_options={key: os.environ["BENCH_PREFIX"]})


    @app.task
    def noop():
        return None
    """
)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--broker", choices=("redis", "amqp"), default="redis")
    parser.add_argument("--pool", default="solo")
    options = parser.parse_args()
    url = (
        "redis://127.0.0.1:6379/14"
        if options.broker == "redis"
        else "amqp://guest:guest@127.0.0.1:5672//"
    )
    prefix = f"bench-latency-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as directory:
        Path(directory, "latency.py").write_text(PROJECT)
        env = {**os.environ, "BENCH_BROKER": url, "BENCH_PREFIX": prefix,
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), directory])}  # fmt: skip
        sys.path.insert(0, directory)
        os.environ.update(BENCH_BROKER=url, BENCH_PREFIX=prefix)
        from latency import app  # the project written just above

        workers = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "celeriac",
                    "-A",
                    "latency",
                    "worker",
                    "-P",
                    options.pool,
                    "-c",
                    "1",
                    "-n",
                    f"w{i}@bench",
                    "-l",
                    "warning",
                    "-Q",
                    f"{prefix}-q",
                ],
                cwd=directory,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(options.workers)
        ]
        try:
            run(app, options)
        finally:
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(30)
            app.close()


def run(app: object, options: argparse.Namespace) -> None:
    control = app.control
    n = options.workers
    deadline = time.monotonic() + 120
    while len(control.ping(timeout=1.0) or []) < n:  # every worker is up and answering
        if time.monotonic() > deadline:
            raise SystemExit(f"only {len(control.ping(timeout=2.0))} of {n} workers answered")
    trips: list[float] = []
    replies: list[float] = []
    missing = 0
    for _ in range(options.rounds):
        sent = time.perf_counter()

        def arrived(reply: object, sent: float = sent) -> None:
            replies.append(time.perf_counter() - sent)

        inspect = control.inspect(timeout=2.0, limit=n, callback=arrived)
        answered = inspect.ping() or {}
        trips.append(time.perf_counter() - sent)
        missing += n - len(answered)
    ms = [t * 1000 for t in trips]
    each = [t * 1000 for t in replies]
    print(f"inspect().ping() with {n} workers (-P {options.pool}) on {options.broker}, "
          f"{options.rounds} rounds; replies missing: {missing}")  # fmt: skip
    print(f"  round trip (all {n} replies): p50 {statistics.median(ms):.1f} ms, "
          f"p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms")  # fmt: skip
    print(f"  each reply:                   p50 {statistics.median(each):.1f} ms, "
          f"p99 {percentile(each, 0.99):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
