"""``python -m tests.chaos --tier full --seed N``: run a tier and print its report."""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from tests.chaos.report import markdown
from tests.chaos.tiers import SYSTEMS, Selection, run_tier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    parser.add_argument("--tier", choices=("smoke", "full"), default="full")
    parser.add_argument("--seed", type=int, default=None, help="the faults' moments and choices")
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        help="after the table: duplicated runs and the workers' warnings",
    )
    parser.add_argument("--only", default="", help="pool/scenario, e.g. prefork/sigstop")
    parser.add_argument("--broker", default="", help="e.g. redis, rabbitmq, redis-aof")
    parser.add_argument("--system", choices=sorted(SYSTEMS), default="celeriac")
    parser.add_argument("--logs", type=Path, help="write every worker's log under this directory")
    args = parser.parse_args(argv)
    seed = random.randrange(1_000_000) if args.seed is None else args.seed
    prepare = SYSTEMS[args.system].prepare
    under_test = f" ({prepare()})" if prepare is not None else ""  # e.g. makes a virtualenv
    print(f"chaos tier {args.tier}, system {args.system}{under_test}, seed {seed}", flush=True)
    outcomes = []
    for outcome in run_tier(
        args.tier, seed, Selection(args.broker, args.only), args.system, args.logs
    ):
        outcomes.append(outcome)
        print(markdown([outcome]).splitlines()[-1], flush=True)  # progress, one row a case
    print()
    print(f"seed {seed}")
    print(markdown(outcomes))
    for outcome in outcomes:
        if outcome.lost or outcome.lost_probes:
            where = f"{outcome.broker} {outcome.pool}/{outcome.scenario}"
            print(f"lost in {where}: {', '.join(outcome.lost + outcome.lost_probes)}")
        if args.verbose and outcome.evidence:
            print(f"\n{outcome.broker} {outcome.pool} {outcome.scenario}:")
            print("\n".join(f"  {line}" for line in outcome.evidence))
    return 0


if __name__ == "__main__":
    sys.exit(main())
