"""The worker's broker-connection policy: Celery's ``broker_connection_*`` settings, the
backoff, the start-up loop and what an outage logs (the processes themselves are in
tests/integration/test_broker_connection.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from celeriac import Celery
from celeriac.exceptions import BrokerAccessRefused, BrokerConnectionError
from celeriac.worker.connection import Outage, RetryPolicy, backoff, reach_broker


def test_waits_double_from_one_second_up_to_ten() -> None:
    assert [backoff(n) for n in range(1, 8)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    assert backoff(10_000) == 10.0


@pytest.mark.parametrize(
    ("value", "allowed"),
    [(100, 100), (2, 2), (0, 0), (None, None)],  # None: no limit; 0: the first failure ends it
)
def test_max_retries_counts_retries_as_celery_does(value: int | None, allowed: int | None) -> None:
    app = Celery("t", broker="memory://", broker_connection_max_retries=value)
    policy = RetryPolicy.from_conf(app.conf)
    app.close()
    if allowed is None:
        assert not policy.used_up(10**6)
    else:
        assert not policy.used_up(allowed) and policy.used_up(allowed + 1)


def test_an_outage_logs_one_warning_and_one_restored_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = Outage("redis://h:6379/0", RetryPolicy(max_retries=None))
    with caplog.at_level(logging.INFO, logger="celeriac.worker"):
        waits = [outage.failed(BrokerConnectionError("cannot reach X.")) for _ in range(6)]
        outage.restored()
        outage.restored()  # already up: says nothing more
    assert waits == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert len(lines) == 2, lines
    assert lines[0][0] == "WARNING" and "lost the broker connection: cannot reach X." in lines[0][1]
    assert lines[1][0] == "INFO"
    assert lines[1][1].startswith("connection to redis://h:6379/0 restored after")
    assert lines[1][1].endswith("(6 failed attempts)")
    assert not outage.down and outage.failed(BrokerConnectionError("x")) == 1.0  # a new one


@pytest.mark.parametrize(
    ("policy", "failures", "why"),
    [
        (RetryPolicy(after_start=False), 1, "broker_connection_retry is off"),
        (RetryPolicy(max_retries=2), 3, "broker_connection_max_retries=2"),
        (RetryPolicy(max_retries=0), 1, "broker_connection_max_retries=0"),
    ],
)
def test_an_outage_gives_up_when_the_settings_allow_no_more(
    policy: RetryPolicy, failures: int, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    lost: list[BaseException] = []
    outage = Outage("amqp://h//", policy, lost.append)
    error = BrokerConnectionError("down")
    waits = [outage.failed(error) for _ in range(failures)]
    assert waits[-1] is None and None not in waits[:-1]
    assert lost == [error]
    assert f"will not retry ({why}): down" in caplog.text


def test_start_up_retries_until_the_broker_answers(caplog: pytest.LogCaptureFixture) -> None:
    plan: list[BaseException | None] = [BrokerConnectionError("refused."), None]

    async def attempt() -> None:
        error = plan.pop(0)
        if error is not None:
            raise error

    async def scenario() -> bool:
        return await reach_broker(attempt, RetryPolicy(), asyncio.Event())

    assert asyncio.run(scenario()) is True and plan == []
    assert "refused. Trying again in 1 s... (1/100)" in caplog.text


@pytest.mark.parametrize(
    ("policy", "error", "raised"),
    [
        (RetryPolicy(), BrokerAccessRefused("bad vhost"), "^bad vhost$"),
        (RetryPolicy(on_startup=False), BrokerConnectionError("down"), "^down$"),
        (RetryPolicy(max_retries=0), BrokerConnectionError("down"), "Gave up after 1 attempts"),
    ],
)
def test_start_up_raises_at_once_when_retrying_cannot_or_may_not_help(
    policy: RetryPolicy, error: BrokerConnectionError, raised: str
) -> None:
    calls: list[int] = []

    async def attempt() -> None:
        calls.append(1)
        raise error

    with pytest.raises(BrokerConnectionError, match=raised):
        asyncio.run(reach_broker(attempt, policy, asyncio.Event()))
    assert calls == [1]


def test_a_stop_ends_the_start_up_in_the_middle_of_an_attempt() -> None:
    async def scenario() -> tuple[bool, bool]:
        stop = asyncio.Event()
        started = asyncio.Event()
        cancelled = False

        async def attempt() -> None:
            nonlocal cancelled
            started.set()
            try:
                await asyncio.Event().wait()  # a connect that never answers
            except asyncio.CancelledError:
                cancelled = True
                raise

        async def signal_when_started() -> None:
            await started.wait()
            stop.set()

        asyncio.get_running_loop().create_task(signal_when_started())
        reached = await asyncio.wait_for(reach_broker(attempt, RetryPolicy(), stop), 5)
        return reached, cancelled

    assert asyncio.run(scenario()) == (False, True)


def test_start_worker_leaves_no_thread_behind_when_the_broker_never_answers() -> None:
    import socket
    import threading

    from celeriac.testing import start_worker

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = Celery("t", broker=f"redis://127.0.0.1:{port}/0", backend="cache+memory://")
    try:
        with pytest.raises(RuntimeError, match="did not start"), start_worker(app, ready_timeout=1):
            pass
        assert "celeriac-test-worker" not in {t.name for t in threading.enumerate()}
    finally:
        app.close()
