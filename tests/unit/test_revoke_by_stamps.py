"""Revoking by stamped header (``app.control.revoke_by_stamped_headers``): the record on the
broker, the worker's ``Revocations`` matching a task's stamps, terminate requests for the
running tasks that carry a revoked stamp, and an in-thread worker skipping a stamped task.
On the memory broker and on the real Redis (skipped when it is not running).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.brokers.base import Broker
from celeriac.brokers.memory import MemoryBroker
from celeriac.messages import revocation
from celeriac.testing import start_worker
from celeriac.worker.revocations import Revocations

SLACK = 2.0  # seconds an announcement may take to arrive


@pytest.fixture(params=["memory", "redis"])
def make_broker(request: pytest.FixtureRequest) -> Iterator[Callable[[], Broker]]:
    """Brokers on one shared store (for Redis, new clients on the same key prefix, as a
    restarted worker would connect)."""
    made: list[Broker] = []
    if request.param == "memory":
        memory = MemoryBroker()

        def make() -> Broker:
            return memory

    else:
        from celeriac.brokers.redis import RedisBroker

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        def make() -> Broker:
            broker = RedisBroker(url, transport_options={"key_prefix": prefix})
            made.append(broker)
            return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def app(make_broker: Callable[[], Broker]) -> Iterator[Celery]:
    app = Celery("t", broker=make_broker(), backend="cache+memory://")
    try:
        yield app
    finally:
        app.close()


async def eventually(check: Callable[[], bool], timeout: float = SLACK) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, "not within the time allowed"
        await asyncio.sleep(0.01)


def test_a_running_worker_skips_tasks_stamped_with_a_revoked_header(app: Celery) -> None:
    async def scenario() -> None:
        async with Revocations(app.broker) as revocations:
            assert not revocations.is_revoked("t-1", {"run": "r1"})
            app.control.revoke_by_stamped_headers({"run": "r1"})
            await eventually(lambda: revocations.is_revoked("t-1", {"run": "r1"}))
            assert not revocations.is_revoked("t-2", {"run": "r2"})
            assert not revocations.is_revoked("t-3", {"other": "r1"})  # the name counts
            assert not revocations.is_revoked("t-1")  # by stamp, not by id
            # either side may be a list: any value in common revokes
            assert revocations.is_revoked("t-4", {"run": ["r0", "r1"]})
            app.control.revoke_by_stamped_headers({"batch": [7, 8]})
            await eventually(lambda: revocations.is_revoked("t-5", {"batch": 8}))
            assert not revocations.is_revoked("t-6", {"batch": "8"})  # compared as JSON

    asyncio.run(scenario())


def test_a_worker_started_after_the_revoke_loads_it(
    app: Celery, make_broker: Callable[[], Broker]
) -> None:
    app.control.revoke_by_stamped_headers(["run=r1", "run=r2"])  # Celery's command-line form
    app.AsyncResult("any").revoke_by_stamped_headers({"tenant": "acme"})
    later = make_broker()  # a new worker process: a new connection, same broker

    async def scenario() -> None:
        async with Revocations(later) as revocations:
            assert revocations.is_revoked("t-1", {"run": "r2"})
            assert revocations.is_revoked("t-2", {"tenant": "acme"})
            assert not revocations.is_revoked("t-3", {"run": "r3"})
            assert len(revocations) == 3

    asyncio.run(scenario())
    assert all(revocation.is_stamp_key(key) for key in later.revoked_ids())


def test_revoking_the_same_header_twice_keeps_one_record(app: Celery) -> None:
    app.control.revoke_by_stamped_headers({"run": "r1"})
    app.control.revoke_by_stamped_headers({"run": ["r1"]})
    assert len(app.broker.revoked_ids()) == 1


def test_a_revocation_by_header_ends_after_worker_revoke_expires(app: Celery) -> None:
    app.conf.worker_revoke_expires = 0.4

    async def scenario() -> None:
        async with Revocations(app.broker) as running:
            app.control.revoke_by_stamped_headers({"run": "r1"})
            await eventually(lambda: running.is_revoked("t-1", {"run": "r1"}))
            await asyncio.sleep(0.6)
            assert not running.is_revoked("t-1", {"run": "r1"})
        assert app.broker.revoked_ids() == {}

    asyncio.run(scenario())


def test_terminate_reaches_only_the_running_tasks_that_carry_a_revoked_stamp(
    app: Celery,
) -> None:
    killed: list[tuple[str, str]] = []
    running = [("a", {"run": "r1"}), ("b", {"run": "r2"}), ("c", {"run": ["r2", "r1"]})]

    async def scenario() -> None:
        async with Revocations(
            app.broker, on_terminate=lambda *kill: killed.append(kill), running=lambda: running
        ):
            app.control.revoke_by_stamped_headers({"run": "r2"})  # no terminate: no kill
            app.control.revoke_by_stamped_headers({"run": "r1"}, terminate=True, signal=9)
            await eventually(lambda: len(killed) == 2)
            await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert killed == [("a", "SIGKILL"), ("c", "SIGKILL")]


@pytest.mark.parametrize(
    ("headers", "error", "message"),
    [
        ({}, ValueError, "at least one"),
        (["run"], ValueError, "is not 'name=value'"),
        ({"": "x"}, ValueError, "non-empty string"),
        ({"run": object()}, TypeError, "is not JSON data"),
    ],
)
def test_bad_headers_are_refused(
    app: Celery, headers: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        app.control.revoke_by_stamped_headers(headers)


def test_a_task_id_that_reads_as_a_stamp_key_is_refused(app: Celery) -> None:
    with pytest.raises(ValueError, match="revocations by stamped header"):
        app.control.revoke('stamp:["run","r1"]')


def test_an_in_thread_worker_skips_a_queued_stamped_task_and_records_revoked() -> None:
    app = Celery("w", broker="memory://", backend="cache+memory://")
    runs: list[int] = []

    @app.task
    def work(n: int) -> int:
        runs.append(n)
        return n

    doomed = work.s(1)
    doomed.stamp(run="r1")
    revoked = doomed.delay()
    kept = work.s(2)
    kept.stamp(run="r2")
    app.control.revoke_by_stamped_headers({"run": "r1"})
    with start_worker(app, pool="threads", concurrency=1):
        assert kept.delay().get(timeout=5) == 2
        assert work.delay(3).get(timeout=5) == 3  # unstamped
    assert sorted(runs) == [2, 3]
    assert revoked.state == states.REVOKED
    app.close()
