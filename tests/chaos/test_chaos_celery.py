"""Celery 5.7 through the chaos harness (``python -m tests.chaos --system celery``): a case
on a pool Celery lacks is reported, not run; and a small case per broker yields a whole
report row. Whether Celery loses tasks is what the harness measures, not what these tests
assert."""

from __future__ import annotations

import random

import pytest

from tests.chaos import celery_system
from tests.chaos.harness import MakeBroker, Plan, rabbitmq_broker, redis_broker, run_case
from tests.chaos.report import TABLE_COLUMNS, markdown
from tests.chaos.scenarios import SCENARIOS
from tests.chaos.tiers import Selection, run_tier
from tests.conftest import service_missing
from tests.integration.conftest import system_redis_server
from tests.integration.rabbitmq_node import rabbitmq_tools

SMALL_PLAN = Plan(tasks=30, send_window=3.0, faults=1)


def test_a_pool_celery_lacks_is_reported_as_not_offered_and_not_run() -> None:
    (outcome,) = run_tier("full", 1, Selection("redis-aof", "asyncio/sigkill-main"), "celery")
    assert not outcome.offered
    assert outcome.note == "not offered: celery has no asyncio pool"
    row = outcome.row()
    assert row[:4] == ["celery", "redis (aof everysec)", "asyncio", "sigkill-main"]
    assert row[4:-1] == ["-"] * (len(TABLE_COLUMNS) - 5)  # no counts: nothing ran


@pytest.mark.long
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "make_broker", [redis_broker("aof"), rabbitmq_broker("classic")], ids=["redis", "rabbitmq"]
)
def test_a_celery_case_yields_a_whole_report_row(make_broker: MakeBroker) -> None:
    if not celery_system.venv_ready():
        pytest.skip(f"no Celery virtualenv at {celery_system.VENV} (python -m bench.venvs celery)")
    if system_redis_server() is None:
        service_missing("redis-server", "the redis-server program is not on PATH")
    rabbitmq_tools()
    print(celery_system.installed_versions())
    seed = random.randrange(1_000_000)
    print(f"seed {seed}")
    outcome = run_case(make_broker, celery_system.CelerySystem, "threads",
                       SCENARIOS["sigkill-main"], SMALL_PLAN, seed)  # fmt: skip
    print(markdown([outcome]))
    print("\n".join(outcome.evidence))
    row = outcome.row()
    assert len(row) == len(TABLE_COLUMNS)
    assert row[0] == "celery" and row[2:4] == ["threads", "sigkill-main"]
    assert outcome.offered and not outcome.note.startswith("not offered")
    assert outcome.sent == SMALL_PLAN.tasks
    # The sender reaches the broker directly, which this scenario leaves alone.
    assert outcome.confirmed == outcome.sent
    # Every task is counted once: ran once, ran more than once (never with a key: Celery
    # takes none), or lost (nothing is dead-lettered: Celery keeps no dead letters).
    assert outcome.duplicated_with_key == 0 and not outcome.dead_lettered
    ran = outcome.once + outcome.duplicated_without_key
    assert ran + len(outcome.lost) == outcome.confirmed
    assert ran > 0  # Celery's workers did run the tasks
