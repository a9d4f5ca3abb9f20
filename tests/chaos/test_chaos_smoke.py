"""The chaos suite against real workers on a Redis server and a RabbitMQ node of the test's
own: the smoke tier in the default run, the full tier (every scenario and pool, each
broker's persistence modes or queue types) marked long."""

from __future__ import annotations

import random

import pytest

from tests.chaos.harness import Plan
from tests.chaos.report import Outcome, markdown
from tests.chaos.tiers import FULL_PLAN, SMOKE_PLAN, run_tier
from tests.conftest import service_missing
from tests.integration.conftest import system_redis_server
from tests.integration.rabbitmq_node import rabbitmq_tools


@pytest.fixture(autouse=True)
def _needs_servers() -> None:
    if system_redis_server() is None:
        service_missing("redis-server", "the redis-server program is not on PATH")
    rabbitmq_tools()


def recovery_bound(outcome: Outcome, plan: Plan) -> float:
    """How soon work must resume after a fault is undone: within the lease and a second on
    Redis (a stranded message waits out its lease); within 3 s on RabbitMQ, which
    redelivers as soon as a connection closes."""
    return 3.0 if outcome.broker.startswith("rabbitmq") else plan.lease + 1.0


def seed() -> int:
    chosen = random.randrange(1_000_000)
    print(f"chaos seed {chosen} (rerun: python -m tests.chaos --tier smoke --seed={chosen})")
    return chosen


@pytest.mark.alone
@pytest.mark.timeout(240)
def test_no_task_is_lost_and_work_resumes_within_a_lease_after_each_fault() -> None:
    """Workers killed, children killed, a worker frozen past its lease, connections cut, on
    Redis and on RabbitMQ: every task whose send returned runs, and a task sent after each
    fault runs within a lease and a second (Redis) or three seconds (RabbitMQ)."""
    outcomes = list(run_tier("smoke", seed()))
    print(markdown(outcomes))
    for outcome in outcomes:
        where = f"{outcome.broker} {outcome.pool}/{outcome.scenario}: {outcome.evidence}"
        assert outcome.confirmed == outcome.sent, where
        assert outcome.lost == [], where
        assert outcome.recovery <= recovery_bound(outcome, SMOKE_PLAN), where


@pytest.mark.long
@pytest.mark.timeout(2700)  # with the cluster setups, each case starting its own cluster
def test_full_tier_loses_nothing_a_persistent_broker_kept() -> None:
    outcomes = list(run_tier("full", seed()))
    print(markdown(outcomes))
    for outcome in outcomes:
        where = f"{outcome.broker} {outcome.pool}/{outcome.scenario}: {outcome.evidence}"
        if outcome.note.startswith(("expected", "known")):
            continue  # losses by design or documented with their setting, and reported
        assert outcome.lost == [], where
        assert outcome.recovery <= recovery_bound(outcome, FULL_PLAN), where
        if outcome.scenario == "sigstop":
            # A run frozen mid-task resumes when thawed, after another worker took the
            # message over: only such overlapping runs may repeat a keyed task.
            assert outcome.duplicated_with_key <= outcome.overlapping, where
        else:
            assert outcome.duplicated_with_key == 0, where
