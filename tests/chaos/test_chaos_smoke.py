"""The chaos suite against real workers on a Redis broker of the test's own: the smoke tier
in the default run, the full tier (every scenario, both persistence modes) marked long."""

from __future__ import annotations

import random

import pytest

from tests.chaos.report import markdown
from tests.chaos.tiers import FULL_PLAN, SMOKE_PLAN, run_tier
from tests.conftest import service_missing
from tests.integration.conftest import system_redis_server


@pytest.fixture(autouse=True)
def _needs_redis_server() -> None:
    if system_redis_server() is None:
        service_missing("redis-server", "the redis-server program is not on PATH")


def seed() -> int:
    chosen = random.randrange(1_000_000)
    print(f"chaos seed {chosen} (rerun: python -m tests.chaos --tier smoke --seed {chosen})")
    return chosen


@pytest.mark.timeout(150)
def test_no_task_is_lost_and_work_resumes_within_a_lease_after_each_fault() -> None:
    """Workers killed, children killed, a worker frozen past its lease, connections cut:
    every task whose send returned runs, and a task sent after each fault runs within a
    lease and a second."""
    outcomes = list(run_tier("smoke", seed()))
    print(markdown(outcomes))
    bound = SMOKE_PLAN.lease + 1.0
    for outcome in outcomes:
        where = f"{outcome.pool}/{outcome.scenario}: {outcome.evidence}"
        assert outcome.confirmed == outcome.sent, where
        assert outcome.lost == [], where
        assert outcome.recovery <= bound, where


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_full_tier_loses_nothing_a_persistent_broker_kept() -> None:
    outcomes = list(run_tier("full", seed()))
    print(markdown(outcomes))
    for outcome in outcomes:
        where = f"{outcome.broker} {outcome.pool}/{outcome.scenario}: {outcome.evidence}"
        if "persistence off" in outcome.broker and outcome.scenario == "redis-restart":
            continue  # losing what an unpersisted broker held is by design, and reported
        assert outcome.lost == [], where
        assert outcome.recovery <= FULL_PLAN.lease + 1.0, where
        if outcome.scenario == "sigstop":
            # A run frozen mid-task resumes when thawed, after another worker took the
            # message over: only such overlapping runs may repeat a keyed task.
            assert outcome.duplicated_with_key <= outcome.overlapping, where
        else:
            assert outcome.duplicated_with_key == 0, where
