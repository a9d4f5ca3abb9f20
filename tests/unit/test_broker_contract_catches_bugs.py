"""The broker contract can fail: run it in an inner pytest session against broken brokers.

Each broken broker is ``MemoryBroker`` with one user-visible promise broken through the
public API only; the correct ``MemoryBroker`` runs the same selection as the control.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence

import pytest

from celeriac.brokers.base import Delivery, OutboundMessage
from celeriac.brokers.memory import MemoryBroker

pytest_plugins = ["pytester"]


class LeasesNeverExpire(MemoryBroker):
    def __init__(self, *, lease_seconds: float = 30.0, delivery_limit: int = 5) -> None:
        super().__init__(lease_seconds=3600.0, delivery_limit=delivery_limit)


class RedeliversEarly(MemoryBroker):
    def __init__(self, *, lease_seconds: float = 30.0, delivery_limit: int = 5) -> None:
        super().__init__(lease_seconds=lease_seconds / 10, delivery_limit=delivery_limit)


class NoDeliveryLimit(MemoryBroker):
    def __init__(self, *, lease_seconds: float = 30.0, delivery_limit: int = 5) -> None:
        super().__init__(lease_seconds=lease_seconds, delivery_limit=1_000)


class IgnoresPriority(MemoryBroker):
    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        super().publish_many([dataclasses.replace(m, priority=0) for m in messages])


class IgnoresEta(MemoryBroker):
    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        super().publish_many([dataclasses.replace(m, delay=None) for m in messages])


class AcceptsStaleAck(MemoryBroker):
    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        await super().ack(delivery)
        return True  # the bug: claims success for a lease that was taken over


class ExtendDoesNothing(MemoryBroker):
    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return []


class PollsEvery3Seconds(MemoryBroker):
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        await asyncio.sleep(min(timeout, 3.1))  # the bug: sleeps instead of waiting on publish
        return await super().fetch(queues, limit, 0)


# (broken broker, -k selection, the tests that must fail)
CASES = [
    (LeasesNeverExpire, "abandoned", {"test_abandoned_message_comes_back_after_the_lease"}),
    (RedeliversEarly, "abandoned", {"test_abandoned_message_comes_back_after_the_lease"}),
    (NoDeliveryLimit, "delivery_limit", {"test_delivery_limit_dead_letters_the_message"}),
    (
        IgnoresPriority,
        "priority_first or fifo_within_a_queue",
        {"test_higher_priority_first_and_fifo_within_a_priority"},
    ),
    (IgnoresEta, "eta_is_held", {"test_eta_is_held_until_due_then_fetched_once"}),
    (
        AcceptsStaleAck,
        "fenced or ack_removes",
        {"test_stale_delivery_is_fenced_after_takeover", "test_ack_removes_the_message_for_good"},
    ),
    (ExtendDoesNothing, "extending_holder", {"test_extending_holder_is_never_redelivered"}),
    (PollsEvery3Seconds, "another_thread", {"test_fetch_wakes_when_another_thread_publishes"}),
]


def run_contract(
    pytester: pytest.Pytester, broker_cls: type[MemoryBroker], select: str
) -> dict[str, str]:
    """Run the selected contract tests against ``broker_cls``; return name -> outcome."""
    # The inner session runs in this process, so it imports the class from this module.
    pytester.makepyfile(
        test_inner_contract=f"""
import pytest
from celeriac.testing.contracts import BrokerContract
from {__name__} import {broker_cls.__name__} as Engine

@pytest.fixture
def make_broker():
    def make(lease_seconds=30.0, delivery_limit=5):
        return Engine(lease_seconds=lease_seconds, delivery_limit=delivery_limit)
    return make

class TestUnderCheck(BrokerContract):
    pass
"""
    )
    # no:celeriac keeps the project's own pytest plugin out of the inner session.
    recorder = pytester.inline_run("-p", "no:cacheprovider", "-p", "no:celeriac", "-k", select)
    outcomes: dict[str, str] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        name = report.nodeid.rsplit("::", 1)[-1]
        if report.when == "call" and report.failed and "AssertionError" in str(report.longrepr):
            outcomes[name] = "failed"  # an assertion caught the bug, not a crash
        elif report.when == "call" or not report.passed:
            outcomes[name] = f"{report.when} {report.outcome}"
    assert outcomes, f"-k {select!r} selected no contract test"
    return outcomes


@pytest.mark.parametrize(
    ("broken", "select", "must_fail"), CASES, ids=[case[0].__name__ for case in CASES]
)
def test_contract_fails_a_broken_broker(
    pytester: pytest.Pytester, broken: type[MemoryBroker], select: str, must_fail: set[str]
) -> None:
    outcomes = run_contract(pytester, broken, select)
    assert {name for name, outcome in outcomes.items() if outcome == "failed"} == must_fail
    assert set(outcomes.values()) <= {"failed", "call passed"}, outcomes


@pytest.mark.parametrize("select", sorted({case[1] for case in CASES}))
def test_contract_passes_the_correct_broker_on_the_same_selection(
    pytester: pytest.Pytester, select: str
) -> None:
    outcomes = run_contract(pytester, MemoryBroker, select)
    must_fail_when_broken = set().union(*(case[2] for case in CASES if case[1] == select))
    assert must_fail_when_broken <= set(outcomes)
    assert set(outcomes.values()) == {"call passed"}, outcomes
