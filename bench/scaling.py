"""Drain throughput against the number of worker processes, on one broker node and on a
cluster, and what each task costs the broker (commands, bytes, CPU).

    .venv/bin/python -m bench.scaling                        # every broker, 1/2/4/8 workers
    .venv/bin/python -m bench.scaling --brokers redis,redis-cluster -n 10000 --procs 1,2,4,8

Every server is private, on spare ports, started here and stopped at the end (never the
shared Redis or RabbitMQ): the broker under test (a redis-server; the six-server Redis
Cluster of the tests; a RabbitMQ node; the three-node RabbitMQ cluster of the tests) and
the instrument's redis-server, which counts the tasks' INCRs. For each number of worker
processes it

1. publishes N ``incr`` tasks, one ``delay`` each, from a child process (no worker up):
   the publish side's cost per task;
2. starts the workers (``celeriac worker -P threads -c 8``, each its own process) and times
   the drain from the moment the last of them is ready (``bench/scaling_app.py``) to the
   N-th INCR: tasks/s;
3. stops them warm and takes the worker side's cost per task (start-up and shutdown of
   the workers included, amortised over N).

Costs, per task: on Redis ``INFO`` deltas summed over the masters (commands executed,
inside Lua scripts included; client bytes in and out; ``used_cpu_*``), and apart the
masters' replication stream and the replicas' CPU; on RabbitMQ (no per-node message rates
without the management plugin) the CPU seconds of each node's process tree, and the
messages counted on the test side.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the servers of the test suite

from tests.chaos.servers import RedisServer  # noqa: E402
from tests.integration.rabbitmq_cluster_nodes import LocalRabbitCluster  # noqa: E402
from tests.integration.rabbitmq_node import RabbitNode  # noqa: E402
from tests.integration.redis_cluster_servers import start_cluster  # noqa: E402

BINDIR = Path(sys.executable).parent
PREFIX = "bench"
Costs = collections.defaultdict[str, float]  # a missing cost reads 0


@dataclass
class Broker:
    """A started broker: its URL, how to read its costs, how to stop it."""

    label: str
    url: str
    redis_ports: list[int]  # Redis: every node (masters found at each reading)
    rabbit_pids: list[int]  # RabbitMQ: each node's process-group leader
    stop: Callable[[], None]

    def costs(self) -> Costs:
        return redis_costs(self.redis_ports) if self.redis_ports else rabbit_costs(self.rabbit_pids)


def redis_costs(ports: list[int]) -> Costs:
    """Commands, client bytes and CPU on the masters; the replicas' CPU and the masters'
    replication stream to them apart."""
    found: Costs = collections.defaultdict(float)
    for port in ports:
        client = redis.Redis(port=port)
        try:
            info = client.info("everything")
        finally:
            client.close()
        cpu = info["used_cpu_user"] + info["used_cpu_sys"]
        found["repl_bytes"] += info["total_net_repl_output_bytes"]
        if info["role"] != "master":
            found["replica_cpu_s"] += cpu
            continue
        found["cpu_s"] += cpu
        calls = sum(v["calls"] for k, v in info.items() if k.startswith("cmdstat_"))
        found["commands"] += calls - 1  # this INFO
        # The totals count replication too (a master's stream to its replica): apart.
        found["bytes_in"] += info["total_net_input_bytes"] - info["total_net_repl_input_bytes"]
        found["bytes_out"] += info["total_net_output_bytes"] - info["total_net_repl_output_bytes"]
    return found


def rabbit_costs(pids: list[int]) -> Costs:
    """CPU seconds of each node's whole process tree (the Erlang VM and its helpers)."""
    found: Costs = collections.defaultdict(float)
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(pid)
            for proc in [root, *root.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    times = proc.cpu_times()
                    found["cpu_s"] += times.user + times.system
    return found


@contextlib.contextmanager
def started(label: str, directory: Path) -> Iterator[Broker]:
    if label == "redis":
        server = RedisServer(directory, "off")
        server.start()
        broker = Broker(label, server.url, [server.port], [], server.stop)
    elif label == "redis-cluster":
        cluster = start_cluster(directory)
        ports = [node.port for node in cluster.nodes]
        broker = Broker(label, cluster.url, ports, [], cluster.stop)
    elif label == "rabbitmq":
        node = RabbitNode(directory, label="scaling")
        node.start()
        assert node.process is not None
        broker = Broker(label, node.url, [], [node.process.pid], node.crash)
    elif label == "rabbitmq-cluster":
        rabbits = LocalRabbitCluster(directory)
        rabbits.start()
        pids = [n.process.pid for n in rabbits.nodes if n.process is not None]
        broker = Broker(label, rabbits.url, [], pids, rabbits.stop)
    else:
        raise SystemExit(f"unknown broker {label!r}: use redis, redis-cluster, rabbitmq, "
                         "rabbitmq-cluster")  # fmt: skip
    try:
        yield broker
    finally:
        broker.stop()


def environment(broker: Broker, instrument: RedisServer) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
        "BENCH_BROKER": "redis" if broker.redis_ports else "amqp",
        "BENCH_BROKER_URL": broker.url,
        "BENCH_REDIS_URL": instrument.url,
        "BENCH_PREFIX": PREFIX,
        "BENCH_QUEUE": "bench",
        "BENCH_POOL": "threads",
        "BENCH_CONCURRENCY": "8",
    }


def publish(env: dict[str, str], n: int) -> None:
    """N tasks, one ``delay`` each, from a child process (the app reads its settings on
    import); returns once the broker has them all."""
    code = (
        "from bench.peers import celeriac as p\n"
        f"c = p.Client(); c.send('incr', [{n}] * {n}); c.flush(); c.close()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)


def drain(env: dict[str, str], marks: redis.Redis, procs: int, n: int, logs: Path
          ) -> tuple[float, float, int]:  # fmt: skip
    """Start ``procs`` workers on the queued tasks; (tasks/s once all are ready, worker CPU
    seconds, tasks run before the last one was ready)."""
    command = [str(BINDIR / "celeriac"), "-A", "bench.scaling_app", "worker", "-P", "threads",
               "-c", "8", "-Q", "bench", "-l", "warning"]  # fmt: skip
    workers = []
    for index in range(procs):
        log = (logs / f"worker-{index}.log").open("w")
        workers.append(subprocess.Popen([*command, "-n", f"s{index}@%h"], env=env, cwd=ROOT,
                                        stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
    cpu = 0.0
    try:
        for _ in range(procs):
            if marks.blpop([f"{PREFIX}:ready"], 120) is None:
                raise SystemExit(f"a worker was not ready within 120 s: see {logs}")
        ready_at, head = time.time(), int(marks.get(f"{PREFIX}:count") or 0)
        done = marks.blpop([f"{PREFIX}:done"], 600)
        if done is None:
            raise SystemExit(f"the drain did not end within 600 s: see {logs}")
        rate = (n - head) / (float(done[1]) - ready_at)
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = psutil.Process(worker.pid).cpu_times()
                cpu += times.user + times.system
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)  # warm: what runs settles first
        for worker in workers:
            worker.wait(60)
    return rate, cpu, head


def measure(broker: Broker, instrument: RedisServer, procs: int, n: int, logs: Path
            ) -> dict[str, float]:  # fmt: skip
    env = environment(broker, instrument)
    marks = redis.Redis.from_url(instrument.url, socket_timeout=None)  # BLPOPs of minutes
    marks.flushdb()
    before = broker.costs()
    publish(env, n)
    published = broker.costs()
    rate, worker_cpu, head = drain(env, marks, procs, n, logs)
    drained = broker.costs()
    ran = int(marks.get(f"{PREFIX}:count") or 0)
    marks.close()
    if ran != n:
        print(f"warning: {ran} of {n} tasks ran", flush=True)
    row = {"procs": procs, "rate": rate, "head": head, "worker_cpu_ms": 1000 * worker_cpu / n}
    for side, (a, b) in {"pub": (before, published), "work": (published, drained)}.items():
        for name in ("commands", "bytes_in", "bytes_out", "repl_bytes"):
            row[f"{side}_{name}"] = (b[name] - a[name]) / n
        row[f"{side}_cpu_ms"] = 1000 * (b["cpu_s"] - a["cpu_s"]) / n
        row[f"{side}_replica_cpu_ms"] = 1000 * (b["replica_cpu_s"] - a["replica_cpu_s"]) / n
    return row


HEADER = ("| broker | workers | drain tasks/s | x 1 worker | publish: cmds/task | bytes in+out "
          "| broker CPU ms | work: cmds/task | bytes in+out | broker CPU ms "
          "| replicas: bytes, CPU ms "
          "| worker CPU ms |")  # fmt: skip


def line(label: str, row: dict[str, float], base: float) -> str:
    return (
        f"| {label} | {row['procs']:.0f} | {row['rate']:,.0f} | {row['rate'] / base:.2f} "
        f"| {row['pub_commands']:.2f} | {row['pub_bytes_in'] + row['pub_bytes_out']:,.0f} "
        f"| {row['pub_cpu_ms']:.3f} | {row['work_commands']:.2f} "
        f"| {row['work_bytes_in'] + row['work_bytes_out']:,.0f} | {row['work_cpu_ms']:.3f} "
        f"| {row['pub_repl_bytes'] + row['work_repl_bytes']:,.0f}, "
        f"{row['pub_replica_cpu_ms'] + row['work_replica_cpu_ms']:.3f} "
        f"| {row['worker_cpu_ms']:.3f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scaling",
                                     description=__doc__.split("\n")[0])  # fmt: skip
    parser.add_argument("-n", type=int, default=10_000, help="tasks per drain")
    parser.add_argument("--procs", default="1,2,4,8", help="worker processes, e.g. 1,2,4,8")
    parser.add_argument("--brokers", default="redis,redis-cluster,rabbitmq,rabbitmq-cluster")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # unwinds: servers stopped
    directory = Path(tempfile.mkdtemp(prefix="celeriac-scaling-"))
    print(f"N = {args.n:,}, {time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} cores; "
          f"worker logs under {directory} while it runs\n\n{HEADER}\n" + "|---" * 12 + "|",
          flush=True)  # fmt: skip
    instrument = RedisServer(directory / "instrument")
    instrument.start()
    try:
        for label in args.brokers.split(","):
            with started(label, directory / label) as broker:
                base = 0.0
                for procs in (int(p) for p in args.procs.split(",")):
                    logs = directory / label / f"workers-{procs}"
                    logs.mkdir(parents=True, exist_ok=True)
                    row = measure(broker, instrument, procs, args.n, logs)
                    base = base or row["rate"]
                    print(line(label, row, base), flush=True)
    finally:
        instrument.stop()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
