"""The tiers: which brokers, pools and scenarios, with how many tasks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from tests.chaos.harness import MakeBroker, Plan, redis_broker, run_case
from tests.chaos.report import Outcome
from tests.chaos.scenarios import SCENARIOS, Scenario

POOLS = ("threads", "prefork")

# The smoke tier: the default test run, about a minute on two cores.
SMOKE = (("threads", "sigkill-main"), ("threads", "proxy-cut"),
         ("prefork", "sigkill-child"), ("prefork", "sigstop"))  # fmt: skip
SMOKE_PLAN = Plan(tasks=40, send_window=3.0, faults=2)
# About two thirds of what two prefork workers of two children run, so a fault's backlog
# drains.
FULL_PLAN = Plan(tasks=200, send_window=15.0, faults=3)


def cases(tier: str) -> Iterator[tuple[str, MakeBroker, str, Scenario, Plan]]:
    """(persistence, broker, pool, scenario, plan) for every case of ``tier``."""
    if tier == "smoke":
        for pool, name in SMOKE:
            yield "aof", redis_broker("aof"), pool, SCENARIOS[name], SMOKE_PLAN
        return
    for persistence in ("aof", "off"):
        for pool in POOLS:
            for scenario in SCENARIOS.values():
                if pool in scenario.pools:
                    yield persistence, redis_broker(persistence), pool, scenario, FULL_PLAN


def run_tier(tier: str, seed: int, only: str = "", logs: Path | None = None) -> Iterator[Outcome]:
    """Run the cases of ``tier`` (``only``: those whose "pool/scenario" contains it)."""
    for persistence, make_broker, pool, scenario, plan in cases(tier):
        if only not in f"{pool}/{scenario.name}":
            continue
        outcome = run_case(make_broker, pool, scenario, replace(plan, logs=logs), seed)
        if outcome.lost and scenario.name == "redis-restart" and persistence == "off":
            outcome.note = "expected: the broker keeps nothing across a crash"
        yield outcome
