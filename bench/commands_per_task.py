"""Count the Redis commands a celeriac worker sends per task, by command name and pool.

    .venv/bin/python -m bench.commands_per_task -n 10000
    .venv/bin/python -m bench.commands_per_task -n 20 --monitor 3   # + one task's sequence

Counts, never times, so a busy machine gives the same answer. It starts two private
redis-servers on spare ports (``--save '' --appendonly no``; stopped at the end): the
broker (with the result store in its DB 1 when one is used) and the instrument's
(``bench/peers/_common.py``), so the task's own INCR is not counted. For each
configuration it queues N ``incr`` tasks in bulk, starts ``celeriac worker`` with its CLI,
waits for the instrument's last mark, stops the worker warm (SIGTERM) and compares the
broker's ``INFO commandstats`` before and after: that counts every command the server
executed, including those run inside Lua scripts. A ``MONITOR`` kept open meanwhile
counts the commands the worker *sent* (a script call is one; the calls it makes inside
are marked ``lua`` by Redis and not counted there). Worker start-up and shutdown are
included, amortised over N.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
BINDIR = Path(sys.executable).parent
CONFIGS = (("threads", 8), ("prefork", 2), ("solo", 1), ("asyncio", 100))
Counts = collections.Counter[str]


class Server:
    """A throw-away redis-server on a spare port: no persistence, no shared state."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("redis-server is not on PATH")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = tempfile.mkdtemp(prefix="celeriac-cmds-")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit(f"redis-server did not start on port {self.port}")
                time.sleep(0.05)

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def commandstats(self) -> Counts:
        stats = self.client.info("commandstats")
        return collections.Counter(
            {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}
        )

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Monitor:
    """MONITOR in a thread: the commands clients sent (``sent``) and, with ``keep``, every
    line verbatim (``lines``), script-internal ones included."""

    server: Server
    keep: bool = False
    sent: Counts = field(default_factory=collections.Counter)
    lines: list[str] = field(default_factory=list)

    def start(self) -> None:
        self._conn = redis.Redis(port=self.server.port).connection_pool.get_connection()
        self._conn.send_command("MONITOR")
        self._conn.read_response()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                line = self._conn.read_response()
            except (redis.ConnectionError, OSError, ValueError, AttributeError):
                return
            text = line.decode(errors="replace") if isinstance(line, bytes) else str(line)
            if self.keep:
                self.lines.append(text)
            # '<time> [<db> <addr>|lua] "CMD" ...'
            source, _, rest = text.partition("] ")
            if source.endswith("lua") or not rest.startswith('"'):
                continue
            self.sent[rest[1:].split('"', 1)[0].lower()] += 1

    def stop(self) -> None:
        self._conn.disconnect()
        self._thread.join(5)


def measure(
    pool: str, concurrency: int, extra: list[str], results: bool, n: int, watch: int
) -> tuple[Counts, Counts, list[str]]:
    """One drain: (commands sent, commands executed, ``watch`` tasks' worth of MONITOR
    lines from the middle of the drain, away from start-up and shutdown)."""
    broker, instrument = Server(), Server()
    env = {
        **os.environ,
        "BENCH_POOL": pool,
        "BENCH_CONCURRENCY": str(concurrency),
        "BENCH_BROKER": "redis",
        "BENCH_BROKER_URL": broker.url(),
        "BENCH_REDIS_URL": instrument.url(),
        "BENCH_RESULT_BACKEND": broker.url(1) if results else "",
    }
    try:
        _queue(env, n)
        before = broker.commandstats()
        monitor = Monitor(broker, keep=watch > 0)
        monitor.start()
        worker = subprocess.Popen(
            [str(BINDIR / "celeriac"), "-A", "bench.peers.celeriac", "worker", "-P", pool,
             "-c", str(concurrency), "-Q", "bench", "-l", "warning", *extra],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            if instrument.client.blpop(["bench:done"], 600) is None:
                sys.exit(f"{pool}: the drain did not end within 600 s")
        finally:
            worker.send_signal(signal.SIGTERM)  # warm: what is running settles first
            if worker.wait(60) != 0:
                print(f"warning: the {pool} worker exited with {worker.returncode}")
        monitor.stop()
        executed = broker.commandstats() - before
        executed["info"] -= 1  # our own INFO after the drain
        left = broker.client.xlen("celeriac:{bench}:s0")  # only s0 is used: no priorities
        if left:
            print(f"warning: {left} entries left in the stream after the {pool} drain")
        lines = monitor.lines
        calls = [i for i, line in enumerate(lines) if '"EVALSHA"' in line]
        at = calls[len(calls) // 2] if calls else len(lines) // 2
        return +monitor.sent, +executed, lines[at : at + 25 * watch] if watch else []
    finally:
        broker.stop()
        instrument.stop()


def _queue(env: dict[str, str], n: int) -> None:
    """Queue the N tasks from a child process: the adapter reads its settings on import."""
    code = (
        "from bench.peers import celeriac as p\n"
        f"p.Client().send_bulk('incr', [{n}] * {n})\n"
        "p.Client().close()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, check=True)


def table(title: str, rows: dict[str, Counts], n: int) -> None:
    names = sorted({c for counts in rows.values() for c in counts})
    print(f"\n{title} (per task, N = {n:,})\n")
    print("| command | " + " | ".join(rows) + " |")
    print("|---" * (len(rows) + 1) + "|")
    for name in names:
        cells = [f"{rows[k][name] / n:.3f}" if rows[k][name] else "" for k in rows]
        print(f"| {name} | " + " | ".join(cells) + " |")
    totals = " | ".join(f"**{sum(c.values()) / n:.2f}**" for c in rows.values())
    print(f"| **total** | {totals} |")


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m bench.commands_per_task",
                                description=__doc__.split("\n")[0])  # fmt: skip
    p.add_argument("-n", type=int, default=10_000, help="tasks per drain")
    p.add_argument(
        "--pools",
        default=",".join(f"{p}:{c}" for p, c in CONFIGS),
        help="pool:concurrency[:prefetch multiplier],... "
        "(default: threads:8,prefork:2,solo:1,asyncio:100)",
    )
    p.add_argument("--results", default="off,on", help="without/with a result store: off,on")
    p.add_argument(
        "--monitor",
        type=int,
        default=0,
        metavar="TASKS",
        help="also print the MONITOR lines of about this many tasks (first config)",
    )
    args = p.parse_args()
    # A SIGTERM unwinds like Ctrl-C, so the private servers are stopped on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    sent: dict[str, Counts] = {}
    executed: dict[str, Counts] = {}
    for spec in args.pools.split(","):
        pool, conc, *multiplier = spec.split(":")
        extra = ["--prefetch-multiplier", multiplier[0]] if multiplier else []
        for mode in args.results.split(","):
            label = f"{pool} {conc}" + (f" x{multiplier[0]}" if multiplier else "")
            label += " +results" if mode == "on" else ""
            watch = args.monitor if not sent else 0
            sent[label], executed[label], lines = measure(
                pool, int(conc), extra, mode == "on", args.n, watch
            )
            per_task = (sum(c[label].values()) / args.n for c in (sent, executed))
            print("{}: {:.2f} sent, {:.2f} executed per task".format(label, *per_task), flush=True)
            if watch:
                print("\n".join(lines))
    table("Commands the worker sent", sent, args.n)
    table("Commands Redis executed, inside scripts included", executed, args.n)


if __name__ == "__main__":
    main()
