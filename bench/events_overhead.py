"""What task events cost: the same drain through a real worker with and without ``-E``.

    .venv/bin/python -m bench.events_overhead --pool threads --kind incr -n 20000 --reps 3
    .venv/bin/python -m bench.events_overhead --pool asyncio --broker amqp

Each repetition queues N tasks of the shared instrument (``bench/peers/_common.py``) in
bulk, starts ``celeriac worker`` from its CLI (plain, then with ``-E``, the order swapped
every other repetition so a slow minute hurts both alike) and times the drain by the
instrument's own marks. It prints each rate, the medians and the drop with events on.
Worker heartbeats are sent in both runs (a worker always sends them); ``-E`` adds the
task-received, task-started and task-succeeded events of every task. Uses Redis DB 14 and
flushes it, as ``bench.profile`` does: do not run it while ``python -m bench`` runs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

import psutil
import redis

from bench.profile import BINDIR, CONCURRENCY, ROOT, _mark


def drain(
    peer: object,
    r: redis.Redis,
    kind: str,
    n: int,
    events: bool,
    env: dict[str, str],
    extra: list[str],
) -> float:
    """Tasks per second of one drain of ``n`` tasks, with or without task events, and the
    worker's CPU microseconds per task (its process tree, user and system)."""
    client, prefix = peer.Client(), peer.SETTINGS.prefix
    r.flushdb()
    if peer.SETTINGS.broker == "amqp":
        peer.app.broker.purge(peer.SETTINGS.queue)
    if kind == "noop":
        client.send("mark", ["start"])
        client.send_bulk("noop", list(range(n)))
        client.send("mark", ["end"])
        first, last = f"{prefix}:start", f"{prefix}:end"
    else:
        client.send_bulk("incr", [n] * n)
        first, last = f"{prefix}:first", f"{prefix}:done"
    command = peer.worker_command(str(BINDIR)) + (["-E", *extra] if events else [])
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        began = _mark(r, first, 120, "the drain's first task")
        cpu_began, main_began = cpu_seconds(worker.pid), cpu_seconds(worker.pid, tree=False)
        ended = _mark(r, last, 600, "the drain's last task")
        cpu = cpu_seconds(worker.pid) - cpu_began
        main = cpu_seconds(worker.pid, tree=False) - main_began
    finally:
        worker.terminate()
        worker.wait()
    return n / (ended - began), cpu / n * 1e6, main / n * 1e6


def cpu_seconds(pid: int, tree: bool = True) -> float:
    """CPU time used so far by the process ``pid`` and (``tree``) its children (a prefork
    pool's)."""
    process = psutil.Process(pid)
    total = 0.0
    for each in [process, *(process.children(recursive=True) if tree else ())]:
        try:
            times = each.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def event_path_cost(serializer: str, n: int = 30_000) -> tuple[float, float]:
    """CPU microseconds per task of the events alone, in this process: the worker's task
    listener posting received, started and succeeded, then the payloads written (1,000
    events each) in ``serializer``. No broker: the part of the cost that is ours."""
    from types import SimpleNamespace

    from celeriac import Celery
    from celeriac.events.event import encode_batch
    from celeriac.events.worker_events import WorkerEvents
    from celeriac.request import Request
    from celeriac.trace import Outcome, OutcomeKind

    app = Celery("cost", broker="memory://", event_serializer=serializer)
    dispatcher = app.events.Dispatcher(hostname="celeriac@bench")
    events = WorkerEvents(dispatcher, active=lambda: 0, pool_size=lambda: 8)
    jobs = []
    for index in range(n):
        task_id = f"{index:08d}-0000-4000-8000-000000000000"
        request = Request(id=task_id, task="bench.incr", args=(n,), root_id=task_id,
                          headers={"argsrepr": f"({n},)", "kwargsrepr": "{}"})  # fmt: skip
        jobs.append(SimpleNamespace(id=task_id, request=request, delivery=SimpleNamespace(
            queue="bench"), task=SimpleNamespace(name="bench.incr")))  # fmt: skip
    outcome = Outcome(OutcomeKind.SUCCESS, "SUCCESS", retval=None, runtime=0.000123)
    began = time.process_time()
    for job in jobs:
        events.task_received(job)
        events.task_started(job)
        events.task_finished(job, outcome)
    posted = time.process_time()
    queued = list(dispatcher._buffer)
    common = {"hostname": "celeriac@bench", "utcoffset": 0, "pid": 1}
    for start in range(0, len(queued), 1000):
        encode_batch(common, queued[start : start + 1000], serializer)
    written = time.process_time()
    return (posted - began) / n * 1e6, (written - posted) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.events_overhead", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pool", default="threads", choices=sorted(CONCURRENCY))
    p.add_argument(
        "-c", "--concurrency", type=int, help="default: 8 threads, 100 asyncio, 2 prefork"
    )
    p.add_argument("--kind", default="incr", choices=("noop", "incr"), help="the task body")
    p.add_argument("-n", type=int, default=20_000, help="tasks per drain")
    p.add_argument("--reps", type=int, default=3, help="drains with and without events, each")
    p.add_argument("--broker", default="redis", choices=("redis", "amqp"))
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672//")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    p.add_argument("--serializer", default="json", choices=("json", "msgpack"),
                   help="event_serializer of the run with events")  # fmt: skip
    p.add_argument(
        "--path-only", action="store_true", help="only the events' own CPU cost per task"
    )
    args = p.parse_args()
    if args.path_only:
        for serializer in ("json", "msgpack"):
            posting, writing = min(event_path_cost(serializer) for _ in range(3))
            print(f"events in {serializer}: {posting + writing:.1f} us CPU per task "
                  f"({posting:.1f} building three events, {writing:.1f} writing)")  # fmt: skip
        return
    extra = ["--", f"event_serializer={args.serializer}"] if args.serializer != "json" else []
    if args.redis_url.rstrip("/").endswith("/15"):
        p.error("Redis DB 15 belongs to the tests; use another DB")
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
    rates: dict[bool, list[float]] = {False: [], True: []}
    costs: dict[bool, list[float]] = {False: [], True: []}
    try:
        for rep in range(args.reps):
            for events in (False, True) if rep % 2 == 0 else (True, False):
                rate, cost, main_cost = drain(peer, r, args.kind, args.n, events, env, extra)
                rates[events].append(rate)
                costs[events].append(cost)
                print(f"rep {rep + 1}, events {'on ' if events else 'off'}: {rate:,.0f} tasks/s, "
                      f"{cost:.0f} us CPU per task ({main_cost:.0f} in the main process)",
                      flush=True)  # fmt: skip
    finally:
        r.flushdb()
    off, on = statistics.median(rates[False]), statistics.median(rates[True])
    print(f"{args.kind} drain, {args.pool} pool on {args.broker}, {args.n:,} tasks, "
          f"events in {args.serializer}, "
          f"median of {args.reps}: events off {off:,.0f}/s, on {on:,.0f}/s, "
          f"change {100 * (on - off) / off:+.1f}%")  # fmt: skip
    cost_off, cost_on = statistics.median(costs[False]), statistics.median(costs[True])
    print(
        f"worker CPU per task: events off {cost_off:.1f} us, on {cost_on:.1f} us, "
        f"{100 * (cost_on - cost_off) / cost_off:+.1f}% (a CPU-bound drain slows by as much)"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
