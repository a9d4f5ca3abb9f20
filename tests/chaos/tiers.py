"""The tiers: which systems, brokers, pools and scenarios, with how many tasks."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tests.chaos.harness import MakeBroker, Plan, rabbitmq_broker, redis_broker, run_case
from tests.chaos.report import Outcome
from tests.chaos.scenarios import SCENARIOS, Scenario
from tests.chaos.systems import Celeriac, MakeSystem

SYSTEMS: dict[str, MakeSystem] = {"celeriac": Celeriac}
POOLS = ("threads", "prefork", "solo", "asyncio")


@dataclass(frozen=True)
class BrokerSetup:
    label: str  # what --broker matches
    make: MakeBroker
    primary: bool  # every pool and scenario; otherwise only what tells it apart
    loses_on_restart: bool = False  # keeps nothing across a crash, by design
    # Moves countdowns between classic delay queues, which dead-letter at most once: a
    # crash can lose one in transit (documented with the setting).
    loses_countdowns_on_restart: bool = False


BROKERS = (
    BrokerSetup("redis-aof", redis_broker("aof"), primary=True),
    BrokerSetup("redis-off", redis_broker("off"), primary=False, loses_on_restart=True),
    BrokerSetup(
        "rabbitmq-classic",
        rabbitmq_broker("classic"),
        primary=True,
        loses_countdowns_on_restart=True,
    ),
    BrokerSetup(
        "rabbitmq-classic-quorum-delays", rabbitmq_broker("classic", "quorum"), primary=False
    ),
    BrokerSetup("rabbitmq-quorum", rabbitmq_broker("quorum"), primary=False),
)
# A secondary broker setup differs from its primary in what it keeps across a crash.
SECONDARY_CASES = (("threads", "broker-restart"), ("prefork", "broker-restart"),
                   ("threads", "sigkill-main"), ("prefork", "sigkill-main"))  # fmt: skip

# The smoke tier: the default test run, about a minute and a half on two cores.
SMOKE = (("redis-aof", "threads", "sigkill-main"), ("redis-aof", "prefork", "sigkill-child"),
         ("redis-aof", "prefork", "sigstop"), ("redis-aof", "asyncio", "proxy-cut"),
         ("rabbitmq-classic", "threads", "sigstop"),
         ("rabbitmq-classic", "prefork", "proxy-cut"))  # fmt: skip
SMOKE_PLAN = Plan(tasks=40, send_window=3.0, faults=2)
# About two thirds of what two prefork workers of two children run, so a fault's backlog
# drains.
FULL_PLAN = Plan(tasks=200, send_window=15.0, faults=3)


@dataclass(frozen=True)
class Selection:
    """Which cases of a tier to run: each a substring that must match (empty: all)."""

    broker: str = ""  # of the broker setup's label, e.g. "rabbitmq"
    only: str = ""  # of "pool/scenario", e.g. "prefork/sigstop"


def cases(tier: str) -> Iterator[tuple[BrokerSetup, str, Scenario, Plan]]:
    """(broker setup, pool, scenario, plan) for every case of ``tier``."""
    setups = {setup.label: setup for setup in BROKERS}
    if tier == "smoke":
        for label, pool, name in SMOKE:
            yield setups[label], pool, SCENARIOS[name], SMOKE_PLAN
        return
    for setup in BROKERS:
        for pool in POOLS:
            for scenario in SCENARIOS.values():
                wanted = setup.primary or (pool, scenario.name) in SECONDARY_CASES
                if wanted and pool in scenario.pools:
                    yield setup, pool, scenario, FULL_PLAN


def run_tier(tier: str, seed: int, selection: Selection = Selection(), system: str = "celeriac",
             logs: Path | None = None) -> Iterator[Outcome]:  # fmt: skip
    """Run the cases of ``tier`` that ``selection`` picks, against ``system``."""
    for setup, pool, scenario, plan in cases(tier):
        if selection.broker not in setup.label or selection.only not in f"{pool}/{scenario.name}":
            continue
        outcome = run_case(
            setup.make, SYSTEMS[system], pool, scenario, replace(plan, logs=logs), seed
        )
        if outcome.lost and scenario.name == "broker-restart":
            if setup.loses_on_restart:
                outcome.note = "expected: the broker keeps nothing across a crash"
            elif setup.loses_countdowns_on_restart and outcome.lost_only_countdowns:
                outcome.note = ("known: countdowns lost between classic delay queues "
                                "(at-most-once dead-lettering)")  # fmt: skip
        yield outcome
