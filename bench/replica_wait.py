"""What waiting for a replica would cost a publish on Redis: one XADD per call (a publish's
write) against XADD followed by ``WAIT 1 100`` on the same connection, pipelined into one
round trip as a publish option would send it, and as two round trips.

    .venv/bin/python -m bench.replica_wait [-n 5000]

A private master and replica (redis-servers on spare ports, replication local, stopped at
the end). ``WAIT`` returns once the replica acknowledged the connection's writes, which it
does on its next replication ack (Redis asks for one at once when a client waits), so the
cost is a replication round trip, here on loopback; across machines add the network's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the suite's servers

from tests.chaos.servers import RedisServer

PAYLOAD = b"x" * 600  # about a task message's size


def timed(n: int, call: Callable[[int], None]) -> tuple[float, float, float]:
    """(calls/s, p50 ms, p99 ms) of ``n`` calls."""
    spent = []
    for i in range(n):
        began = time.perf_counter()
        call(i)
        spent.append(time.perf_counter() - began)
    spent.sort()
    return n / sum(spent), 1000 * statistics.median(spent), 1000 * spent[int(0.99 * n)]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replica_wait")
    parser.add_argument("-n", type=int, default=5000)
    n = parser.parse_args().n
    directory = Path(tempfile.mkdtemp(prefix="celeriac-wait-"))
    master, replica = RedisServer(directory / "master"), RedisServer(directory / "replica")
    master.start()
    replica.start()
    try:
        client = redis.Redis(port=master.port)
        redis.Redis(port=replica.port).replicaof("127.0.0.1", master.port)
        while (
            client.info("replication")["connected_slaves"] < 1
            or int(
                client.execute_command("WAIT", 1, 1000)  # type: ignore[no-untyped-call]
            )
            < 1
        ):
            time.sleep(0.05)  # the replica's first sync: nothing to await
        missed = 0

        def plain(i: int) -> None:
            client.xadd("s", {"p": PAYLOAD})

        def pipelined(i: int) -> None:
            nonlocal missed
            pipe = client.pipeline(transaction=False)
            pipe.xadd("s", {"p": PAYLOAD})
            pipe.execute_command("WAIT", 1, 100)
            missed += int(pipe.execute()[1]) < 1

        def separate(i: int) -> None:
            client.xadd("s", {"p": PAYLOAD})
            client.execute_command("WAIT", 1, 100)  # type: ignore[no-untyped-call]

        cases = (("XADD", plain), ("XADD + WAIT 1 100, one round trip", pipelined),
                 ("XADD, then WAIT 1 100", separate), ("XADD (again)", plain))  # fmt: skip
        for name, call in cases:
            rate, p50, p99 = timed(n, call)
            print(f"{name:36}: {rate:8,.0f} /s  p50 {p50:.3f} ms  p99 {p99:.3f} ms", flush=True)
        print(f"WAIT timed out (no replica ack within 100 ms): {missed} of {n}")
        client.close()
    finally:
        replica.stop()
        master.stop()


if __name__ == "__main__":
    main()
