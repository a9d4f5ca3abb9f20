"""Soak: a million tasks through one worker of each pool; does its memory stay flat?

    .venv/bin/python -m bench.soak                       # 1,000,000 tasks, each pool
    .venv/bin/python -m bench.soak -n 200000 --pools threads --results

For each pool it queues N one-``INCR`` tasks of the shared instrument in bulk, starts
``celeriac worker`` with its CLI and samples the resident memory of the worker's process
tree once a second until the last task ran. The figure is the growth from the warm-up
(the sample once 10 % of the tasks ran) to the end: what a worker that runs for days would
keep adding. With ``--results`` every task stores its result in a Redis result store
(DB 13, kept ``--expires`` seconds); the tool then waits for the results to expire and
compares the Redis server's ``used_memory`` with its figure before the run. It uses Redis
DB 14 (the benchmark's) and 13, flushed before and after: do not run it beside
``python -m bench``. Load on the machine slows it but does not change what it measures.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import redis

ROOT = Path(__file__).resolve().parents[1]
BINDIR = Path(sys.executable).parent
CONCURRENCY = {"threads": 8, "asyncio": 100, "prefork": 2}
WARM_SHARE = 0.10  # the warm-up ends once this share of the tasks ran
RESULTS_DB = 13


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n")[0])
    p.add_argument("-n", type=int, default=1_000_000, help="tasks per pool")
    p.add_argument("--pools", default="threads,prefork,asyncio")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument("--results", action="store_true", help="store every result in Redis")
    p.add_argument("--expires", type=int, default=60, help="result_expires, seconds")
    args = p.parse_args()
    rows = [soak(pool, args) for pool in args.pools.split(",")]
    print()
    print(
        "| pool | tasks | drain/s | RSS at warm-up MB | RSS at end MB | growth MB | max MB |"
        + (" Redis used_memory after expiry vs before |" if args.results else "")
    )
    print("|---|---|---|---|---|---|---|" + ("---|" if args.results else ""))
    for row in rows:
        line = (
            f"| {row['pool']} | {row['n']:,} | {row['rate']:,.0f} | {row['warm']:.1f} | "
            f"{row['end']:.1f} | {row['end'] - row['warm']:+.1f} | {row['max']:.1f} |"
        )
        if args.results:
            line += f" {row['redis_delta'] / 2**20:+.1f} MB |"
        print(line)


def soak(pool: str, args: argparse.Namespace) -> dict[str, Any]:
    base = args.redis_url.rsplit("/", 1)[0]
    env = dict(os.environ)
    env.update(
        BENCH_BROKER="redis", BENCH_BROKER_URL=args.redis_url, BENCH_REDIS_URL=args.redis_url,
        BENCH_QUEUE=f"soak-{pool}", BENCH_POOL=pool, BENCH_CONCURRENCY=str(CONCURRENCY[pool]),
        BENCH_PREFIX=f"soak:{pool}", PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    )  # fmt: skip
    if args.results:
        env["BENCH_RESULT_BACKEND"] = f"{base}/{RESULTS_DB}"
        env["BENCH_RESULT_EXPIRES"] = str(args.expires)
    r = redis.Redis.from_url(args.redis_url)
    results = redis.Redis.from_url(f"{base}/{RESULTS_DB}")
    r.flushdb()
    results.flushdb()
    before = int(r.info("memory")["used_memory"])
    # The producer runs in a child with the worker's settings: the adapter reads them once.
    producer = (
        "import sys; from bench.peers import celeriac as peer; "
        f"peer.Client().send_bulk('incr', [{args.n}] * {args.n})"
    )
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", producer], env=env, cwd=ROOT, check=True)
    print(f"{pool}: {args.n:,} tasks queued in {time.monotonic() - started:.0f} s", flush=True)
    prefix = env["BENCH_PREFIX"]  # where the instrument counts and marks the last task
    cmd = [str(BINDIR / "celeriac"), "-A", "bench.peers.celeriac", "worker", "-P", pool,
           "-c", env["BENCH_CONCURRENCY"], "-Q", env["BENCH_QUEUE"], "-l", "warning"]  # fmt: skip
    worker = subprocess.Popen(cmd, env=env, cwd=ROOT, start_new_session=True)
    samples: list[tuple[int, float]] = []  # (tasks done, RSS MB)
    try:
        began = time.monotonic()
        while True:
            popped = r.blpop([f"{prefix}:done"], timeout=1)
            done = int(r.get(f"{prefix}:count") or 0)
            samples.append((done, rss_mb(worker.pid)))
            if popped is not None:
                break
            if worker.poll() is not None:
                sys.exit(f"the {pool} worker exited with {worker.returncode}")
        elapsed = time.monotonic() - began
    finally:
        worker.terminate()
        worker.wait(30)
    warm = next(mb for done, mb in samples if done >= args.n * WARM_SHARE)
    row = {"pool": pool, "n": args.n, "rate": args.n / elapsed, "warm": warm,
           "end": samples[-1][1], "max": max(mb for _, mb in samples)}  # fmt: skip
    if args.results:
        # Results expire by Redis's own TTLs: wait until none is left, then compare.
        deadline = time.monotonic() + args.expires + 120
        while results.dbsize() and time.monotonic() < deadline:
            time.sleep(1)  # a poll of the server's key count: nothing to wait on instead
        r.delete(f"{prefix}:count", f"{prefix}:first", f"{prefix}:done")
        row["redis_delta"] = int(r.info("memory")["used_memory"]) - before
    print(f"{pool}: {row}", flush=True)
    r.flushdb()
    results.flushdb()
    return row


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its children, MB."""
    root = psutil.Process(pid)
    total = 0
    for proc in [root, *root.children(recursive=True)]:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total / 2**20


if __name__ == "__main__":
    main()
