"""The benchmark harness: celeriac and its peers, same machine, same run, interleaved.

    .venv/bin/python -m bench                 # everything (see bench/README.md)
    .venv/bin/python -m bench --quick         # celeriac only, small N, about a minute

Every measurement goes through the same instrument (``bench/peers/_common.py``) and the
same steps, for every configuration, in each repetition; the configurations take turns
(round robin, the order rotated each repetition). Each tool's worker is started with the
tool's own CLI, as a user would run it. Writes ``results.json`` and ``RESULTS.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import select
import shlex
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import redis

from bench import floor, venvs
from bench.report import render

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LOGS = BENCH_DIR / ".logs"
SNAPSHOTS = BENCH_DIR / ".snapshots"
VHOST = "celeriac-bench"
PEERS = ("celery", "dramatiq", "huey", "rq", "arq", "taskiq")
POOLS = {"threads": 8, "asyncio": 100, "prefork": 2}


class PhaseError(Exception):
    """One step of one configuration failed; the run goes on with the next."""


@dataclass(frozen=True)
class Config:
    key: str
    peer: str
    label: str
    broker: str  # "redis" | "amqp"
    pool: str
    concurrency: int
    # Extra variables for the peer's adapter (a setting other than the tool's default).
    env: tuple[tuple[str, str], ...] = ()


def all_configs(
    celeriac_pools: list[str], peers: list[str], amqp_pools: list[str], fifo: bool = True
) -> list[Config]:
    configs = [
        Config(f"celeriac-{pool}", "celeriac", f"celeriac {pool} {POOLS[pool]}", "redis", pool,
               POOLS[pool])
        for pool in celeriac_pools
    ]  # fmt: skip
    if amqp_pools:
        configs += [
            Config(f"celeriac-amqp-{pool}", "celeriac",
                   f"celeriac on RabbitMQ, {pool} {POOLS[pool]}", "amqp", pool, POOLS[pool])
            for pool in amqp_pools
        ]  # fmt: skip
    if fifo and "threads" in amqp_pools:
        # celeriac's RabbitMQ queues have ten priority levels by default; the peers' are
        # first in, first out: this row compares like with like on the queue too.
        configs.append(
            Config("celeriac-amqp-threads-fifo", "celeriac",
                   "celeriac on RabbitMQ, threads 8, FIFO queues", "amqp", "threads", 8,
                   (("BENCH_QUEUE_MAX_PRIORITY", "none"),))
        )  # fmt: skip
    known = [
        Config("celery-threads", "celery", "Celery threads 8", "redis", "threads", 8),
        Config("celery-prefork", "celery", "Celery prefork 2", "redis", "prefork", 2),
        Config("celery-amqp-prefork", "celery", "Celery on RabbitMQ, prefork 2", "amqp",
               "prefork", 2),
        Config("dramatiq", "dramatiq", "Dramatiq 1 proc x 8 threads", "redis", "threads", 8),
        Config("dramatiq-amqp", "dramatiq", "Dramatiq on RabbitMQ, 1 proc x 8 threads", "amqp",
               "threads", 8),
        Config("huey", "huey", "Huey 8 threads", "redis", "threads", 8),
        Config("taskiq", "taskiq", "Taskiq 2 procs x 100 async", "redis", "asyncio", 100),
        Config("rq", "rq", "RQ (fork per job)", "redis", "fork", 1),
        Config("arq", "arq", "arq (max_jobs 10)", "redis", "asyncio", 10),
    ]  # fmt: skip
    return configs + [c for c in known if c.peer in peers]


# -- helpers ----------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(-(-q * len(ordered) // 1)) - 1))
    return ordered[rank]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def sh(cmd: list[str], timeout: float = 60) -> str:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode:
        raise RuntimeError(f"{shlex.join(cmd)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


class Driver:
    """``python -m bench.driver <peer>`` in the peer's venv: the producer side."""

    def __init__(self, python: str, peer: str, env: dict[str, str], logfile: Path) -> None:
        self._log = open(logfile, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [python, "-m", "bench.driver", peer],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=REPO,
        )
        self._buffer = b""

    def call(self, request: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write((json.dumps(request) + "\n").encode())
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise PhaseError(f"driver: no answer to {request['op']} in {timeout:.0f} s")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    raise PhaseError(f"driver exited ({self.proc.wait()}); see {self._log.name}")
                self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise PhaseError(f"driver {request['op']}: {answer['error'].strip()[-1500:]}")
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            assert self.proc.stdin
            self.proc.stdin.write(b'{"op": "close"}\n')
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Worker:
    """A worker started with the tool's own CLI, in its own process group."""

    def __init__(self, cmd: list[str], env: dict[str, str], logfile: Path) -> None:
        self.logfile = logfile
        with open(logfile, "ab") as out:
            out.write(f"$ {shlex.join(cmd)}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                cmd, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.started = time.time()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def check(self) -> None:
        if not self.alive():
            tail = self.logfile.read_text(errors="replace")[-1500:]
            raise PhaseError(f"worker exited with {self.proc.returncode}:\n{tail}")

    def memory(self) -> dict[str, float]:
        """RSS and PSS (MB) of the worker and all its descendants."""
        rss = pss = 0
        root = psutil.Process(self.proc.pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                info = proc.memory_full_info()
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
        return {"rss_mb": rss / 2**20, "pss_mb": pss / 2**20}

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the worker and its live descendants so far."""
        total = 0.0
        root = psutil.Process(self.proc.pid)
        for proc in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = proc.cpu_times()
                total += times.user + times.system
        return total

    def stop(self, timeout: float = 8) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)  # the warm shutdown every tool supports
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers of our own session only
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


# -- the harness ------------------------------------------------------------------------------
@dataclass
class Options:
    n: int
    reps: int
    lat_n: int
    sporadic_n: int
    sleep_n: int
    depths: list[int]
    depth_configs: list[str]
    drain_timeout: float
    redis_url: str
    amqp_url: str
    out_dir: Path
    command: str
    quick: bool


@dataclass
class Bench:
    opts: Options
    configs: list[Config]
    celeriac_path: list[str]
    pythons: dict[str, str] = field(default_factory=dict)
    infos: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.r = redis.Redis.from_url(self.opts.redis_url)
        self.stamp = time.strftime("%Y%m%d-%H%M%S")

    # environment ----------------------------------------------------------------------
    def env(self, config: Config, queue: str, prefix: str) -> dict[str, str]:
        env = dict(os.environ)
        paths = [*self.celeriac_path] if config.peer == "celeriac" else []
        env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO)])
        env.pop("VIRTUAL_ENV", None)
        env.update(
            BENCH_BROKER=config.broker,
            BENCH_BROKER_URL=self.opts.amqp_url if config.broker == "amqp" else self.opts.redis_url,
            BENCH_REDIS_URL=self.opts.redis_url,
            BENCH_QUEUE=queue,
            BENCH_POOL=config.pool,
            BENCH_CONCURRENCY=str(config.concurrency),
            BENCH_PREFIX=prefix,
            PYTHONUNBUFFERED="1",
        )
        env.update(config.env)
        return env

    @contextlib.contextmanager
    def phase(self, config: Config, rep: int, name: str) -> Iterator[tuple[Driver, Any]]:
        """A fresh queue, a fresh producer, a flushed DB; the worker factory."""
        queue = f"bench-{config.key}-{rep}-{name}-{os.getpid()}"
        prefix = f"bench:{config.key}:{name}"
        env = self.env(config, queue, prefix)
        logfile = LOGS / f"{self.stamp}-{config.key}-r{rep}-{name}.log"
        self.r.flushdb()
        driver = Driver(self.pythons[config.peer], config.peer, env, logfile)
        workers: list[Worker] = []
        command: list[str] = []

        def start_worker() -> Worker:
            worker = Worker(command, env, logfile)
            workers.append(worker)
            return worker

        try:
            command += driver.call({"op": "info"}, 120)["worker"]  # names this step's queue
            yield driver, (start_worker, prefix)
        finally:
            for worker in workers:
                worker.stop()
            driver.close()
            self.r.flushdb()

    def redis_bytes(self) -> tuple[int, int]:
        """(MEMORY USAGE summed over this DB's keys, server used_memory)."""
        total = 0
        keys = list(self.r.scan_iter(count=1000))
        for start in range(0, len(keys), 1000):
            pipe = self.r.pipeline(transaction=False)
            for key in keys[start : start + 1000]:
                pipe.memory_usage(key, samples=0)
            total += sum(int(x or 0) for x in pipe.execute())
        return total, int(self.r.info("memory")["used_memory"])

    def commands_run(self) -> int:
        """Commands the Redis server has run so far (``INFO commandstats``, every client)."""
        stats = self.r.info("commandstats")
        return sum(int(entry["calls"]) for entry in stats.values())

    def wait_counter(self, worker: Worker, prefix: str, target: int) -> dict[str, Any]:
        """Block on ``<prefix>:done`` (pushed by the task that counts ``target``)."""
        deadline = time.time() + self.opts.drain_timeout
        done_at = None
        polls = 0
        while done_at is None and time.time() < deadline:
            polls += 1
            popped = self.r.blpop([f"{prefix}:done"], timeout=1)
            if popped is not None:
                done_at = float(popped[1])
            else:
                worker.check()
        first = self.r.lindex(f"{prefix}:first", 0)
        if first is None:
            raise PhaseError(f"no task ran within {self.opts.drain_timeout:.0f} s")
        first_at = float(first)
        if done_at is not None:
            count, partial, end = target, False, done_at
        else:
            count, partial, end = int(self.r.get(f"{prefix}:count") or 0), True, time.time()
        rate = (count - 1) / (end - first_at) if end > first_at else None
        # The harness's own commands: its BLPOPs, the LINDEX, and the GET when cut short.
        own = polls + 1 + int(partial)
        return {"rate": rate, "n": count, "partial": partial, "since_start_s": end - worker.started,
                "harness_commands": own}  # fmt: skip

    # the steps ------------------------------------------------------------------------
    def step_calls(self, config: Config, rep: int, out: dict[str, Any]) -> None:
        """Per-call enqueue of N ``incr`` tasks, Redis bytes per task, drain, worker RSS."""
        n = self.opts.n
        with self.phase(config, rep, "calls") as (driver, (start_worker, prefix)):
            before = self.redis_bytes()
            sent = driver.call({"op": "send", "kind": "incr", "n": n, "arg": n}, 60 + n / 50)
            out["enqueue_per_call"] = n / sent["seconds"]
            if config.broker == "redis":
                after = self.redis_bytes()
                out["redis_bytes_per_task"] = (after[0] - before[0]) / n
                out["redis_used_memory_per_task"] = (after[1] - before[1]) / n
            commands_before = self.commands_run()
            worker = start_worker()
            drained = self.wait_counter(worker, prefix, n)
            cpu = worker.cpu_seconds()
            commands = self.commands_run() - commands_before
            out["drain_incr"] = drained["rate"]
            out["drain_incr_n"] = drained["n"]
            out["drain_incr_partial"] = drained["partial"]
            ran = drained["n"]
            if ran:
                out["cpu_s_per_1k"] = cpu / ran * 1000
                if config.broker == "redis":
                    # Worker-side broker commands: all the server ran during the drain but
                    # the instrument's (one INCR a task, two pushes of the first and last
                    # task's times), the harness's, and the second INFO itself.
                    worker_side = commands - ran - 2 - drained["harness_commands"] - 1
                    out["broker_commands_per_task"] = worker_side / ran
            time.sleep(0.5)  # RSS is read 0.5 s after the drain, as documented
            out.update(worker.memory())

    def step_bulk_noop(self, config: Config, rep: int, out: dict[str, Any]) -> None:
        """Bulk enqueue of no-op tasks between two marks; the pure no-op drain."""
        n = self._capped(self.opts.n, out)
        with self.phase(config, rep, "noop") as (driver, (start_worker, prefix)):
            driver.call({"op": "send", "kind": "mark", "n": 1, "arg": "start"})
            bulk = driver.call({"op": "bulk", "kind": "noop", "n": n}, 60 + n / 50)
            if bulk["method"] is None:
                driver.call({"op": "send", "kind": "noop", "n": n}, 60 + n / 50)
            else:
                out["enqueue_bulk"] = n / bulk["seconds"]
            out["bulk_method"] = bulk["method"]
            driver.call({"op": "send", "kind": "mark", "n": 1, "arg": "end"})
            worker = start_worker()
            deadline, end = time.time() + self.opts.drain_timeout, None
            while end is None and time.time() < deadline:
                popped = self.r.blpop([f"{prefix}:end"], timeout=1)
                if popped is None:
                    worker.check()
                else:
                    end = float(popped[1])
            start = self.r.lindex(f"{prefix}:start", 0)
            if end is None or start is None:
                raise PhaseError(f"no-op drain of {n} did not end in {self.opts.drain_timeout} s")
            out["drain_noop"] = n / (end - float(start))
            out["drain_noop_n"] = n

    def step_sleep(self, config: Config, rep: int, out: dict[str, Any]) -> None:
        """Drain of tasks that each wait 10 ms (I/O-bound), then do the INCR."""
        n = self._capped(self.opts.sleep_n, out, share=0.5)
        with self.phase(config, rep, "sleep") as (driver, (start_worker, prefix)):
            bulk = driver.call({"op": "bulk", "kind": "sleep", "n": n, "arg": n}, 60 + n / 50)
            if bulk["method"] is None:
                driver.call({"op": "send", "kind": "sleep", "n": n, "arg": n}, 60 + n / 50)
            drained = self.wait_counter(start_worker(), prefix, n)
            out["drain_sleep"] = drained["rate"]
            out["drain_sleep_n"] = drained["n"]
            out["drain_sleep_partial"] = drained["partial"]

    def step_latency(self, config: Config, rep: int, out: dict[str, Any]) -> None:
        """Enqueue -> start latency on an idle worker, then after random 0.2-1.2 s gaps."""
        with self.phase(config, rep, "latency") as (driver, (start_worker, _prefix)):
            start_worker()
            driver.call({"op": "latency", "n": 3, "budget": 60, "timeout": 60}, 200)  # warm-up
            idle = driver.call(
                {"op": "latency", "n": self.opts.lat_n, "budget": 20, "seed": rep}, 120
            )["values"]
            sporadic = driver.call(
                {"op": "latency", "n": self.opts.sporadic_n, "gap": [0.2, 1.2], "budget": 30,
                 "seed": 100 + rep},
                120,
            )["values"]  # fmt: skip
            if idle:
                out["lat_idle_p50_ms"] = percentile(idle, 0.50) * 1000
                out["lat_idle_p99_ms"] = percentile(idle, 0.99) * 1000
                out["lat_idle_samples"] = len(idle)
            if sporadic:
                out["lat_sporadic_p50_ms"] = percentile(sporadic, 0.50) * 1000
                out["lat_sporadic_max_ms"] = max(sporadic) * 1000
                out["lat_sporadic_samples"] = len(sporadic)

    def step_depth(self, config: Config, rep: int, out: dict[str, Any]) -> None:
        """Per-call enqueue and drain with ``depth`` tasks already queued."""
        sample = min(self.opts.n, 2000)
        for depth in self.opts.depths:
            drain_n = min(depth, self.opts.n)
            with self.phase(config, rep, f"depth{depth}") as (driver, (start_worker, prefix)):
                timeout = 120 + depth / 100
                bulk = driver.call(
                    {"op": "bulk", "kind": "incr", "n": depth, "arg": drain_n}, timeout
                )
                if bulk["method"] is None:
                    driver.call({"op": "send", "kind": "incr", "n": depth, "arg": drain_n}, timeout)
                sent = driver.call({"op": "send", "kind": "incr", "n": sample, "arg": drain_n})
                out[f"depth_{depth}_enqueue_per_call"] = sample / sent["seconds"]
                drained = self.wait_counter(start_worker(), prefix, drain_n)
                out[f"depth_{depth}_drain_incr"] = drained["rate"]
                out[f"depth_{depth}_drain_n"] = drained["n"]

    def _capped(self, n: int, out: dict[str, Any], share: float = 1.0) -> int:
        """A slow tool gets fewer tasks (what it drains in ~half the drain timeout)."""
        rate = out.get("drain_incr")
        if not rate:
            return n
        return max(200, min(n, int(rate * self.opts.drain_timeout * 0.5 * share)))

    def raw_redis(self) -> dict[str, float]:
        """redis-py (hiredis) round trips: the per-call ceiling, and pipelined."""
        n, key = self.opts.n, "bench:raw"
        started = time.perf_counter()
        for _ in range(n):
            self.r.incr(key)
        per_call = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for _ in range(0, n, 1000):
            pipe = self.r.pipeline(transaction=False)
            for _ in range(1000):
                pipe.incr(key)
            pipe.execute()
        pipelined = (n // 1000 * 1000) / (time.perf_counter() - started)
        self.r.delete(key)
        return {"raw_incr_per_call": per_call, "raw_incr_pipelined": pipelined}

    def floor(self, broker: str, rep: int) -> None:
        """The idle hand-off floor of ``broker`` (``bench.floor``): what any tool's idle
        latency is weighed against."""
        try:
            values = floor.measure(broker, self.opts.lat_n, self.opts.redis_url, self.opts.amqp_url)
        except Exception as exc:  # a floor is context, not a result: the run goes on
            log(f"  floor on {broker} failed: {exc}")
            return
        out = {"rep": rep, "lat_idle_p50_ms": percentile(values, 0.50) * 1000,
               "lat_idle_p99_ms": percentile(values, 0.99) * 1000}  # fmt: skip
        self.runs.setdefault(f"floor-{broker}", []).append(out)
        log(f"rep {rep + 1}/{self.opts.reps} floor on {broker}: {summary_line(out)}")

    def ensure_vhost(self) -> None:
        """Make our vhost again if something on the machine removed it (or RabbitMQ reset)."""
        if not self.opts.amqp_url.endswith(f"/{VHOST}"):
            return
        with contextlib.suppress(Exception):
            if VHOST not in sh(["rabbitmqctl", "list_vhosts", "-q"], 30).split():
                log(f"  vhost {VHOST} is gone: making it again")
                amqp_setup(self.opts.amqp_url.rsplit("/", 1)[0])

    # the run --------------------------------------------------------------------------
    def prepare(self) -> None:
        LOGS.mkdir(parents=True, exist_ok=True)
        for peer in dict.fromkeys(c.peer for c in self.configs):
            log(f"venv for {peer} ...")
            if peer == "celeriac" and self.opts.quick:  # no peers to weigh it against
                self.pythons[peer] = sys.executable
                continue
            self.pythons[peer] = venvs.ensure(peer, log=LOGS / f"pip-{peer}.log")
        for config in self.configs:
            env = self.env(config, "QUEUE", "bench:info")  # the commands in RESULTS.md say QUEUE
            driver = Driver(self.pythons[config.peer], config.peer, env, LOGS / "info.log")
            try:
                self.infos[config.key] = driver.call({"op": "info"}, 120)
            finally:
                driver.close()
        self.r.flushdb()

    def run(self) -> None:
        steps = [self.step_calls, self.step_bulk_noop, self.step_sleep, self.step_latency]
        for rep in range(self.opts.reps):
            shift = rep % len(self.configs)
            order = self.configs[shift:] + self.configs[:shift]
            for config in order:
                out: dict[str, Any] = {"rep": rep, "errors": [], "retried": []}
                started = time.time()
                todo = list(steps)
                if config.key in self.opts.depth_configs and self.opts.depths:
                    todo.append(self.step_depth)
                for step in todo:
                    began = time.time()
                    for attempt in (1, 2):  # a shared machine: services restart under us
                        try:
                            step(config, rep, out)
                            break
                        except Exception as exc:
                            failure = f"{step.__name__} (attempt {attempt}): {exc}"
                            out["errors" if attempt == 2 else "retried"].append(failure)
                            log(f"  {config.key} {failure[:300]}")
                            if config.broker == "amqp":
                                self.ensure_vhost()
                            time.sleep(3)  # let a restarted service settle before the retry
                    out.setdefault("step_seconds", {})[step.__name__] = time.time() - began
                out["seconds"] = time.time() - started
                self.runs.setdefault(config.key, []).append(out)
                log(f"rep {rep + 1}/{self.opts.reps} {config.key}: {summary_line(out)}")
            raw = self.raw_redis()
            raw["rep"] = rep
            self.runs.setdefault("raw-redis", []).append(raw)
            log(f"rep {rep + 1}/{self.opts.reps} raw redis-py: {summary_line(raw)}")
            for broker in dict.fromkeys(c.broker for c in self.configs):
                self.floor(broker, rep)


def summary_line(out: dict[str, Any]) -> str:
    keys = ("enqueue_per_call", "enqueue_bulk", "drain_incr", "drain_noop", "drain_sleep",
            "lat_idle_p50_ms", "lat_sporadic_p50_ms", "rss_mb", "redis_bytes_per_task",
            "raw_incr_per_call", "raw_incr_pipelined")  # fmt: skip
    parts = [f"{k}={out[k]:,.1f}" for k in keys if isinstance(out.get(k), float)]
    parts += [
        f"{k}={v:,.0f}" for k, v in out.items() if k.startswith("depth_") and k.endswith("_incr")
    ]
    return " ".join(parts) + (f" errors={len(out['errors'])}" if out.get("errors") else "")


# -- machine, versions, RabbitMQ ----------------------------------------------------------------
def machine_facts(r: redis.Redis) -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    rabbit = "not reachable"
    with contextlib.suppress(Exception):
        rabbit = sh(["rabbitmqctl", "version"], 30).strip()
        handles = rabbitmq_file_handles()
        if handles is not None:
            rabbit += f", {handles[0]:,} of {handles[1]:,} file handles in use"
            if handles[1] < RABBITMQ_MIN_FILES:
                log(f"WARNING: the RabbitMQ node may open only {handles[1]:,} files: it "
                    f"stalls once they run out. Restart it with `ulimit -n "
                    f"{RABBITMQ_MIN_FILES}` or more (as .ci/run does), then measure")  # fmt: skip
    server = r.info("server")
    return {
        "cpu_model": model,
        "cpus": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "redis": server.get("redis_version"),
        "rabbitmq": rabbit,
        "load_average_at_start": os.getloadavg(),
    }


# Below this many files a RabbitMQ node that many queues and connections have used stalls
# (its queues wait for a handle) instead of failing: the figures on RabbitMQ would be off.
RABBITMQ_MIN_FILES = 8192


def rabbitmq_file_handles() -> tuple[int, int] | None:
    """(in use, limit) of the local RabbitMQ node's file handles, or None if unknown."""
    with contextlib.suppress(Exception):
        found = json.loads(sh(["rabbitmqctl", "status", "--formatter", "json"], 30))
        files = found["file_descriptors"]
        return int(files["total_used"]), int(files["total_limit"])
    return None


def celeriac_source(ref: str | None) -> tuple[list[str], dict[str, Any]]:
    """PYTHONPATH entries for celeriac processes and what was measured."""
    git = ["git", "-C", str(REPO)]
    if ref is None:
        dirty = bool(sh([*git, "status", "--porcelain", "--", "src"]).strip())
        commit = sh([*git, "rev-parse", "HEAD"]).strip()
        return [str(REPO / "src")], {"source": "working tree", "commit": commit, "src_dirty": dirty}
    commit = sh([*git, "rev-parse", ref]).strip()
    target = SNAPSHOTS / commit[:12]
    if not (target / "src" / "celeriac").is_dir():
        archive = subprocess.run([*git, "archive", "--format=tar", commit, "src"],
                                 capture_output=True, check=True).stdout  # fmt: skip
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, filter="data")
            else:  # Python < 3.10.12 / 3.11.4
                tar.extractall(target)
    return [str(target / "src")], {"source": f"git archive of {ref}", "commit": commit}


def amqp_setup(amqp_url: str) -> tuple[str, str]:
    """A vhost of our own (deleted at the end); the URL to use and a note."""
    try:
        with contextlib.suppress(RuntimeError):
            sh(["rabbitmqctl", "delete_vhost", VHOST])
        sh(["rabbitmqctl", "add_vhost", VHOST])
        sh(["rabbitmqctl", "set_permissions", "-p", VHOST, "guest", ".*", ".*", ".*"])
        return f"{amqp_url.rstrip('/')}/{VHOST}", f"vhost {VHOST} (created, deleted after)"
    except Exception as exc:
        return f"{amqp_url.rstrip('/')}/%2F", f"default vhost, unique queue names ({exc})"


def amqp_teardown(note: str) -> None:
    if note.startswith(f"vhost {VHOST}"):
        with contextlib.suppress(Exception):
            sh(["rabbitmqctl", "delete_vhost", VHOST])


PROBE = """
import sys
from celeriac import Celeriac
app = Celeriac("probe", broker=sys.argv[1])
app.send_task("bench.probe", args=(1,), queue="bench-probe")
n = app.broker.queue_length("bench-probe")
app.broker.purge("bench-probe")
assert n == 1, f"queue_length after one publish: {n}"
"""


def amqp_available(url: str, celeriac_path: list[str]) -> tuple[bool, str]:
    """Whether celeriac's ``amqp://`` broker can publish and count a message."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([*celeriac_path, str(REPO)]))
    try:
        done = subprocess.run([sys.executable, "-c", PROBE, url], capture_output=True,
                              text=True, timeout=60, env=env, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        return False, "not available: the probe timed out"
    if done.returncode == 0:
        return True, "available"
    lines = done.stderr.strip().splitlines() or ["?"]
    return False, f"not available: {lines[-1][:200]}"


# -- results ------------------------------------------------------------------------------------
def summarize(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for key, outs in runs.items():
        metrics: dict[str, Any] = {}
        names = dict.fromkeys(k for out in outs for k in out)
        for name in names:
            values = [out[name] for out in outs if isinstance(out.get(name), float)]
            if values and name != "seconds":
                metrics[name] = {"median": statistics.median(values), "min": min(values),
                                 "max": max(values), "runs": len(values)}  # fmt: skip
        for flag in ("drain_incr_partial", "drain_sleep_partial"):
            if any(out.get(flag) for out in outs):
                metrics[flag] = True
        methods = {out["bulk_method"] for out in outs if out.get("bulk_method")}
        if methods:
            metrics["bulk_method"] = " / ".join(sorted(methods))
        retried = [e for out in outs for e in out.get("retried", [])]
        if retried:
            metrics["retried"] = retried
        errors = [e for out in outs for e in out.get("errors", [])]
        if errors:
            metrics["errors"] = errors
        summary[key] = metrics
    return summary


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="celeriac only, small N, one repetition (about a minute); no peers",
    )
    p.add_argument("-n", "--n", type=int, help="tasks per drain (default 20,000; quick 2,000)")
    p.add_argument("--reps", type=int, help="repetitions (default 3; quick 1)")
    p.add_argument(
        "--peers",
        help=f"comma-separated peers (default all: {','.join(PEERS)}; '' for none)",
    )
    p.add_argument("--pools", default="threads,asyncio,prefork", help="celeriac pools")
    p.add_argument("--latency-samples", type=int, help="idle latency samples (default 200)")
    p.add_argument("--sporadic-samples", type=int, help="sporadic samples (default 15)")
    p.add_argument("--sleep-n", type=int, help="10 ms tasks per drain (default 2,000)")
    p.add_argument("--depths", help="queue depths, comma-separated (default 1000,100000)")
    p.add_argument("--with-1m", action="store_true", help="add the 1,000,000 depth (slow)")
    p.add_argument(
        "--depth-configs",
        help="configurations measured at depth (default celeriac-threads, celeriac-amqp-threads)",
    )
    p.add_argument(
        "--drain-timeout",
        type=float,
        default=60.0,
        help="seconds a drain may take before its partial rate is reported",
    )
    p.add_argument(
        "--redis-url",
        default="redis://127.0.0.1:6379/14",
        help="Redis DB used (flushed before and after each step; never DB 15)",
    )
    p.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672")
    p.add_argument("--no-amqp", action="store_true", help="leave out celeriac on RabbitMQ")
    p.add_argument(
        "--celeriac-ref",
        help="measure this git ref of celeriac (a `git archive` "
        "snapshot under bench/.snapshots) instead of the working tree",
    )
    p.add_argument(
        "--out-dir",
        default=str(BENCH_DIR),
        help="where RESULTS.md and "
        "results.json go (default bench/; quick mode prints only unless given)",
    )
    p.add_argument(
        "--render",
        metavar="RESULTS_JSON",
        help="only write RESULTS.md again, "
        "next to this results.json (after a change to the report's layout)",
    )
    p.add_argument("--upgrade-peers", action="store_true", help="reinstall the peers' venvs")
    return p.parse_args(argv)  # fmt: skip


def chosen_peers(args: argparse.Namespace) -> list[str]:
    """The peers to measure: every one by default, none with ``--peers ''`` (celeriac
    alone, in its own venv as in a full run) or ``--quick``."""
    if args.quick:
        return []
    chosen = ",".join(PEERS) if args.peers is None else args.peers
    peers = [p for p in chosen.split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        raise SystemExit(f"unknown peers: {', '.join(sorted(unknown))}")
    return peers


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        source = Path(args.render)
        (source.parent / "RESULTS.md").write_text(render(json.loads(source.read_text())))
        log(f"wrote {source.parent / 'RESULTS.md'}")
        return 0
    quick = args.quick
    peers = chosen_peers(args)
    if "/15" in args.redis_url.rstrip("/")[-3:]:
        raise SystemExit("DB 15 belongs to the test suite: pick another --redis-url")
    pools = [p for p in args.pools.split(",") if p]
    default_depths = "1000,20000" if quick else "1000,100000"
    depths = [int(d) for d in (default_depths if args.depths is None else args.depths)
              .split(",") if d]  # fmt: skip
    if args.with_1m and 1_000_000 not in depths:
        depths.append(1_000_000)
    command = shlex.join([".venv/bin/python", "-m", "bench", *(sys.argv[1:] if argv is None
                                                                else argv)])  # fmt: skip
    if args.upgrade_peers:
        for peer in peers:
            venvs.ensure(peer, upgrade=True)
    celeriac_path, celeriac_info = celeriac_source(args.celeriac_ref)
    if args.no_amqp and not {"celery", "dramatiq"} & set(peers):
        amqp_url, amqp_note = args.amqp_url, "not used"
    else:
        amqp_url, amqp_note = amqp_setup(args.amqp_url)
    if args.no_amqp:
        available, amqp_state = False, "not measured (--no-amqp)"
    else:
        available, amqp_state = amqp_available(amqp_url, celeriac_path)
    log(f"celeriac amqp:// broker: {amqp_state}")
    amqp_pools = ([p for p in pools if p == "threads"] if quick else pools) if available else []
    configs = all_configs(pools, peers, amqp_pools, fifo=not quick)
    opts = Options(
        n=args.n or (2000 if quick else 20_000),
        reps=args.reps or (1 if quick else 3),
        lat_n=args.latency_samples or (50 if quick else 200),
        sporadic_n=args.sporadic_samples or (5 if quick else 15),
        sleep_n=args.sleep_n or (500 if quick else 2000),
        depths=depths,
        depth_configs=(
            args.depth_configs.split(",")
            if args.depth_configs
            else ["celeriac-threads", "celeriac-amqp-threads"]
        ),
        drain_timeout=args.drain_timeout,
        redis_url=args.redis_url,
        amqp_url=amqp_url,
        out_dir=Path(args.out_dir),
        command=command,
        quick=quick,
    )
    bench = Bench(opts, configs, celeriac_path)
    facts = machine_facts(bench.r)
    started = time.time()
    try:
        bench.prepare()
        log(f"{len(configs)} configurations x {opts.reps} repetitions, N={opts.n:,}")
        bench.run()
    finally:
        bench.r.flushdb()
        amqp_teardown(amqp_note)
    facts["load_average_at_end"] = os.getloadavg()
    results = {
        "command": command,
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "duration_s": round(time.time() - started, 1),
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()},
        "machine": facts,
        "celeriac": {**celeriac_info, "amqp": amqp_state, "rabbitmq_vhost": amqp_note},
        "configs": {c.key: {**asdict(c), **bench.infos.get(c.key, {})} for c in configs},
        "runs": bench.runs,
        "summary": summarize(bench.runs),
    }
    text = render(results)
    if quick and args.out_dir == str(BENCH_DIR):
        print(text)
        return 0
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    (opts.out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (opts.out_dir / "RESULTS.md").write_text(text)
    print(text)
    log(f"wrote {opts.out_dir / 'RESULTS.md'} and results.json")
    return 0
