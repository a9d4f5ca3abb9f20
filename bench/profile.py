"""Drain one queue of celeriac tasks through a real worker, and profile the worker.

    .venv/bin/python -m bench.profile --pool asyncio --kind noop -n 40000
    .venv/bin/python -m bench.profile --pool prefork --kind incr --py-spy 4

The tool behind the worker's hot-path work: it queues N tasks of the shared instrument
(``bench/peers/_common.py``) in bulk, starts ``celeriac worker`` with its CLI, times the
drain by the instrument's own marks (never by polling the worker), and prints the rate.
With ``--py-spy SECONDS`` it records the worker's process tree meanwhile (py-spy must be
installed: ``pip install py-spy``) and prints where the samples fell, by self and by
inclusive time. It uses Redis DB 14, as the benchmark does, and flushes it before and after:
do not run it while ``python -m bench`` runs.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
BINDIR = Path(sys.executable).parent
CONCURRENCY = {"threads": 8, "asyncio": 100, "prefork": 2, "solo": 1}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.split("\n")[0])
    p.add_argument("--pool", default="asyncio", choices=sorted(CONCURRENCY))
    p.add_argument(
        "-c", "--concurrency", type=int, help="default: 8 threads, 100 asyncio, 2 prefork"
    )
    p.add_argument("--kind", default="noop", choices=("noop", "incr"), help="the task body")
    p.add_argument("-n", type=int, default=20_000, help="tasks to drain")
    p.add_argument("--broker", default="redis", choices=("redis", "amqp"))
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument("--py-spy", type=int, metavar="SECONDS", help="profile the worker this long")
    p.add_argument("--gil", action="store_true",
                   help="with --py-spy: sample only the thread holding the GIL (where a "
                        "GIL-bound worker's time goes)")  # fmt: skip
    p.add_argument("--top", type=int, default=30, help="rows of each profile table")
    p.add_argument("--flame", metavar="SVG", help="with --py-spy: also write a flame graph")
    p.add_argument("--callgrind", metavar="LOG",
                   help="run the worker under valgrind's callgrind, its log to LOG, and print "
                        "the instructions it executed (start-up included; see "
                        "bench.instructions)")  # fmt: skip
    args = p.parse_args(argv)
    if args.redis_url.rstrip("/").endswith("/15"):
        p.error("Redis DB 15 belongs to the tests; use another DB")
    spy = shutil.which("py-spy", path=str(BINDIR)) or shutil.which("py-spy")
    if args.py_spy and spy is None:
        p.error("--py-spy needs py-spy: pip install py-spy")
    if args.callgrind and shutil.which("valgrind") is None:
        p.error("--callgrind needs valgrind: apt-get install valgrind")

    env = {
        **os.environ,
        "BENCH_POOL": args.pool,
        "BENCH_CONCURRENCY": str(args.concurrency or CONCURRENCY[args.pool]),
        "BENCH_BROKER": args.broker,
        "BENCH_REDIS_URL": args.redis_url,
        "BENCH_BROKER_URL": args.amqp_url if args.broker == "amqp" else args.redis_url,
    }
    os.environ.update(env)  # the adapter reads its settings when imported
    from bench.peers import celeriac as peer

    r = redis.Redis.from_url(args.redis_url, socket_timeout=None)
    r.flushdb()
    client, prefix = peer.Client(), peer.SETTINGS.prefix
    if peer.SETTINGS.broker == "amqp":
        peer.app.broker.purge(peer.SETTINGS.queue)
    if args.kind == "noop":
        client.send("mark", ["start"])
        client.send_bulk("noop", list(range(args.n)))
        client.send("mark", ["end"])
        first, last = f"{prefix}:start", f"{prefix}:end"
    else:
        client.send_bulk("incr", [args.n] * args.n)
        first, last = f"{prefix}:first", f"{prefix}:done"
    under = (
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
         f"--log-file={args.callgrind}"]
        if args.callgrind else []
    )  # fmt: skip
    worker = subprocess.Popen(
        [*under, *peer.worker_command(str(BINDIR))], env=env, cwd=ROOT, stdout=subprocess.DEVNULL
    )
    recording = None
    try:
        began = _mark(r, first, 120, "the drain's first task")
        cpu_before, redis_before = _cpu(worker.pid), _redis_cpu(r)
        if args.py_spy:  # the drain has begun: the worker's start-up is not profiled
            out = Path(tempfile.mkdtemp()) / "profile.txt"
            recording = (out, subprocess.Popen(
                [str(spy), "record", "-p", str(worker.pid), "-o", str(out), "-f", "raw",
                 "-d", str(args.py_spy), "-r", "200", "--subprocesses",
                 *(["--gil"] if args.gil else [])],
                stdout=subprocess.DEVNULL,
            ))  # fmt: skip
            if args.flame:  # a second recorder: py-spy writes one format per recording
                subprocess.Popen(
                    [str(spy), "record", "-p", str(worker.pid), "-o", args.flame,
                     "-f", "flamegraph", "-d", str(args.py_spy), "-r", "100",
                     "--subprocesses", *(["--gil"] if args.gil else [])],
                    stdout=subprocess.DEVNULL,
                )  # fmt: skip
        ended = _mark(r, last, 600, "the drain's last task")
        (user, system, switches), redis_cpu = _cpu(worker.pid), _redis_cpu(r) - redis_before
        user, system = user - cpu_before[0], system - cpu_before[1]
        switches -= cpu_before[2]
        per_task = 1e6 / args.n
        print(f"{args.kind} drain, {args.pool} pool on {args.broker}: "
              f"{args.n / (ended - began):,.0f} tasks/s ({args.n:,} tasks); CPU per task: "
              f"worker {(user + system) * per_task:,.0f} us ({user * per_task:,.0f} user, "
              f"{system * per_task:,.0f} system, {switches / args.n:.1f} context switches), "
              f"Redis server {redis_cpu * per_task:,.0f} us "
              "(py-spy adds to the worker's)")  # fmt: skip
        if recording is not None:
            if recording[1].wait() != 0 or not recording[0].exists():
                sys.exit("py-spy recorded nothing: its error is above")
            summarise(recording[0], args.top)
    finally:
        worker.terminate()
        worker.wait()
        r.flushdb()
    if args.callgrind:  # valgrind writes its totals as the worker exits
        print(f"instructions executed by the worker: {collected(Path(args.callgrind)):,}")


def collected(log: Path) -> int:
    """The instructions callgrind's log reports (``==PID== Collected : N``), summed over
    the worker's processes: a prefork worker's forked children run under it too."""
    counts = [
        int(line.rsplit(":", 1)[1])
        for line in log.read_text().splitlines()
        if "Collected :" in line
    ]
    if not counts:
        sys.exit(f"no instruction count in {log}: the worker did not exit cleanly under valgrind")
    return sum(counts)


def _cpu(pid: int) -> tuple[float, float, int]:
    """User and system CPU seconds, and context switches, of process ``pid`` and its live
    children."""
    import psutil

    root = psutil.Process(pid)
    user = system = 0.0
    switches = 0
    for proc in [root, *root.children(recursive=True)]:
        times, counts = proc.cpu_times(), proc.num_ctx_switches()
        user, system = user + times.user, system + times.system
        switches += counts.voluntary + counts.involuntary
    return user, system, switches


def _redis_cpu(r: redis.Redis) -> float:
    info = r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _mark(r: redis.Redis, key: str, timeout: int, what: str) -> float:
    """Wait for the clock time a task pushed to ``key``; a clear exit if it never comes."""
    popped = r.blpop([key], timeout)
    if popped is None:
        sys.exit(f"{what} did not run within {timeout} s: see the worker's output above")
    return float(popped[1])


def summarise(path: Path, top: int) -> None:
    """py-spy's raw output (collapsed stacks) by self and by inclusive samples."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        samples, frames = int(count), stack.split(";")
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    for title, counter in (("self", own), ("inclusive", inclusive)):
        print(f"\n== {title} ({total} samples)")
        for frame, samples in counter.most_common(top):
            print(f"{samples / max(total, 1):6.1%}  {frame}")


if __name__ == "__main__":
    main()
