"""The tiers: which systems, brokers, pools and scenarios, with how many tasks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from tests.chaos import celery_system
from tests.chaos.brokers import RabbitClusterBroker, RedisClusterBroker, rabbitmq_name, redis_name
from tests.chaos.harness import (
    MakeBroker,
    Plan,
    rabbitmq_broker,
    rabbitmq_cluster_broker,
    redis_broker,
    redis_cluster_broker,
    run_case,
)
from tests.chaos.report import Outcome
from tests.chaos.scenarios import SCENARIOS, Scenario
from tests.chaos.systems import Celeriac, MakeSystem

POOLS = ("threads", "prefork", "solo", "asyncio")


@dataclass(frozen=True)
class SystemChoice:
    """A system the harness can put under test: how to make it for a case, the worker pools
    it offers (a case on another pool is reported as not offered, never run), and what to do
    once before its first case (make its virtualenv), which returns what is under test for
    the report's header."""

    make: MakeSystem
    pools: tuple[str, ...] = POOLS
    prepare: Callable[[], str] | None = None


SYSTEMS: dict[str, SystemChoice] = {
    "celeriac": SystemChoice(Celeriac),
    "celery": SystemChoice(celery_system.CelerySystem, celery_system.POOLS,
                           celery_system.prepare),
}  # fmt: skip


@dataclass(frozen=True)
class BrokerSetup:
    label: str  # what --broker matches
    name: str  # the report's
    make: MakeBroker
    primary: bool  # every pool and scenario; otherwise only what tells it apart
    loses_on_restart: bool = False  # keeps nothing across a crash, by design
    # Moves countdowns between classic delay queues, which dead-letter at most once: a
    # crash can lose one in transit (documented with the setting).
    loses_countdowns_on_restart: bool = False
    # A master acknowledges a write before its replica has it: a failover can lose the
    # publishes of the last moments before the crash (Redis Cluster, by design).
    replicates_asynchronously: bool = False


BROKERS = (
    BrokerSetup("redis-aof", redis_name("aof"), redis_broker("aof"), primary=True),
    BrokerSetup("redis-off", redis_name("off"), redis_broker("off"), primary=False,
                loses_on_restart=True),
    # celeriac's default: classic queues, and quorum delay queues (the server is 3.10+).
    BrokerSetup("rabbitmq-classic", rabbitmq_name("classic"), rabbitmq_broker("classic"),
                primary=True),
    # Classic delay queues, forced: what a server older than 3.10 gets.
    BrokerSetup("rabbitmq-forced-classic-delays", rabbitmq_name("classic", "classic"),
                rabbitmq_broker("classic", "classic"), primary=False,
                loses_countdowns_on_restart=True),
    BrokerSetup("rabbitmq-quorum", rabbitmq_name("quorum"), rabbitmq_broker("quorum"),
                primary=False),
    # Clusters: the broker fault is a node loss (see brokers.py); only the secondary cases,
    # as the proxy scenarios put a proxy in front of one node, which a cluster client
    # bypasses. Each case starts its own cluster (RabbitMQ: about 15 s more a case).
    BrokerSetup("redis-cluster", RedisClusterBroker.name, redis_cluster_broker(),
                primary=False, replicates_asynchronously=True),
    BrokerSetup("rabbitmq-cluster", RabbitClusterBroker.name, rabbitmq_cluster_broker(),
                primary=False),
)  # fmt: skip
COUNTDOWNS_LOST = (
    "known: countdowns lost between classic delay queues (at-most-once dead-lettering)"
)
ASYNC_REPLICATION_LOST = (
    "known: acknowledged by the killed master before its replica had it (asynchronous replication)"
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
    """Run the cases of ``tier`` that ``selection`` picks, against ``system``; a case on a
    pool the system does not offer is reported as such, not run."""
    choice = SYSTEMS[system]
    for setup, pool, scenario, plan in cases(tier):
        if selection.broker not in setup.label or selection.only not in f"{pool}/{scenario.name}":
            continue
        if pool not in choice.pools:
            note = f"not offered: {system} has no {pool} pool"
            yield Outcome(system, setup.name, pool, scenario.name, offered=False, note=note)
            continue
        outcome = run_case(setup.make, choice.make, pool, scenario, replace(plan, logs=logs), seed)
        known = ""
        if outcome.lost and scenario.name == "broker-restart":
            if setup.loses_on_restart:
                known = "expected: the broker keeps nothing across a crash"
            elif setup.replicates_asynchronously:
                known = ASYNC_REPLICATION_LOST
            elif (system == "celeriac" and setup.loses_countdowns_on_restart
                  and outcome.lost_only_countdowns):  # fmt: skip
                known = COUNTDOWNS_LOST
        if known:
            outcome.note = f"{known}; {outcome.note}" if outcome.note else known
        yield outcome
