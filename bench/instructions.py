"""Instructions a worker executes per task: a measure of the worker's own work that the
machine's noise does not move (callgrind counts instructions, not time).

    .venv/bin/python -m bench.instructions --pool asyncio --kind noop
    .venv/bin/python -m bench.instructions --pool threads --kind incr -n 3000 --small 1000

It drains ``--small`` and then ``-n`` tasks through a real worker running under valgrind's
callgrind (``bench.profile --callgrind``) and divides the difference in instructions by the
difference in tasks, so the worker's start-up and shutdown cancel out. Each drain takes a
minute or two (valgrind runs the worker some 50 times slower). Use it to compare two
versions of the code on a busy machine: run it on each, same arguments. Timing-dependent
work (how many acks share a batch) still varies a little between runs: compare changes
of more than a percent or so. Needs valgrind (``apt-get install valgrind``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
from pathlib import Path

from bench import profile


def count(args: argparse.Namespace, n: int, log: Path) -> int:
    argv = ["--pool", args.pool, "--kind", args.kind, "-n", str(n), "--broker", args.broker,
            "--callgrind", str(log)]  # fmt: skip
    if args.concurrency:
        argv += ["-c", str(args.concurrency)]
    with contextlib.redirect_stdout(io.StringIO()):  # its rate under valgrind means nothing
        profile.main(argv)
    return profile.collected(log)


def main() -> None:
    p = argparse.ArgumentParser(
        prog="python -m bench.instructions", description=__doc__.split("\n")[0]
    )
    p.add_argument("--pool", default="asyncio", choices=sorted(profile.CONCURRENCY))
    p.add_argument("-c", "--concurrency", type=int)
    p.add_argument("--kind", default="noop", choices=("noop", "incr"))
    p.add_argument("--broker", default="redis", choices=("redis", "amqp"))
    p.add_argument("-n", type=int, default=2500, help="tasks in the longer drain")
    p.add_argument("--small", type=int, default=500, help="tasks in the shorter drain")
    args = p.parse_args()
    if not 0 < args.small < args.n:
        p.error("--small must be above 0 and below -n")
    with tempfile.TemporaryDirectory() as tmp:
        small = count(args, args.small, Path(tmp) / "small.log")
        large = count(args, args.n, Path(tmp) / "large.log")
    per_task = (large - small) / (args.n - args.small)
    print(f"{args.kind} tasks, {args.pool} pool on {args.broker}: {per_task:,.0f} instructions "
          f"per task ({small:,} for {args.small:,} tasks, {large:,} for {args.n:,})")  # fmt: skip


if __name__ == "__main__":
    main()
