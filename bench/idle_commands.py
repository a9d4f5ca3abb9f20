"""Sporadic tasks through a real, otherwise idle worker: Redis commands and latency per task.

    .venv/bin/python -m bench.idle_commands --pool threads -n 500

Starts ``celeriac worker`` with its CLI on the shared instrument (``bench/peers``), then
sends ``-n`` tasks one at a time, each once the previous one has run and a pause has
passed (``--pause``), so the worker is idle, waiting, when each arrives. Prints the
commands Redis ran per task (``INFO commandstats`` deltas, commands inside Lua scripts
included) by command, and the enqueue-to-start latency (the instrument's own clock marks).
The sender's ``XADD`` and the instrument's ``RPUSH``/``BLPOP`` are counted apart. Redis's
command statistics are server-wide: run it on a Redis nothing else uses meanwhile (it
uses DB 14, as the benchmark does, and flushes it before and after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parents[1]
BINDIR = Path(sys.executable).parent
CONCURRENCY = {"threads": 8, "asyncio": 100, "prefork": 2, "solo": 1}
INSTRUMENT = {"rpush", "blpop"}  # the latency marks the instrument writes and we read
SENDER = {"xadd"}  # the publish itself


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.idle_commands", description=__doc__)
    p.add_argument("--pool", default="threads", choices=sorted(CONCURRENCY))
    p.add_argument("-n", type=int, default=500, help="sporadic tasks")
    p.add_argument("--pause", type=float, default=0.01, help="seconds between tasks")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    args = p.parse_args()
    env = {
        **os.environ,
        "BENCH_POOL": args.pool,
        "BENCH_CONCURRENCY": str(CONCURRENCY[args.pool]),
        "BENCH_BROKER": "redis",
        "BENCH_REDIS_URL": args.redis_url,
        "BENCH_BROKER_URL": args.redis_url,
    }
    os.environ.update(env)  # the adapter reads its settings when imported
    from bench.peers import celeriac as peer

    r = redis.Redis.from_url(args.redis_url, socket_timeout=None)
    r.flushdb()
    client, prefix = peer.Client(), peer.SETTINGS.prefix
    worker = subprocess.Popen(
        peer.worker_command(str(BINDIR)), env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    try:
        latency(r, client, prefix, 1, 0.0, timeout=60)  # the worker is up and has run one
        before = commands(r)
        samples = latency(r, client, prefix, args.n, args.pause, timeout=10)
        counted = {k: v - before.get(k, 0) for k, v in commands(r).items()}
    finally:
        worker.terminate()
        worker.wait()
        r.flushdb()
    worker_side = {k: v for k, v in counted.items() if k not in INSTRUMENT | SENDER and v}
    print(f"{args.n} sporadic tasks, {args.pool} pool, {args.pause * 1000:.0f} ms apart")
    print(f"enqueue to start: p50 {statistics.median(samples) * 1000:.2f} ms, "
          f"p90 {sorted(samples)[int(len(samples) * 0.9)] * 1000:.2f} ms")  # fmt: skip
    total = sum(worker_side.values())
    print(f"worker-side commands run by Redis per task: {total / args.n:.2f}")
    for name, calls in sorted(worker_side.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<24} {calls / args.n:6.2f}")


def latency(
    r: redis.Redis, client: Any, prefix: str, n: int, pause: float, timeout: int
) -> list[float]:
    """Send ``n`` ``lat`` tasks one after another; each one's enqueue-to-start seconds."""
    key, out = f"{prefix}:lat", []
    for _ in range(n):
        client.send("lat", [time.time()])
        popped = r.blpop([key], timeout)
        if popped is None:
            sys.exit(f"a task did not run within {timeout} s: see the worker's output above")
        out.append(float(popped[1]))
        time.sleep(pause)  # the idle gap between sporadic tasks (the stimulus, not a wait)
    return out


def commands(r: redis.Redis) -> dict[str, int]:
    stats: dict[str, Any] = r.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


if __name__ == "__main__":
    main()
