"""Execution policies with a real worker process, on Redis and on RabbitMQ: retries and
their delays, max_retries, autoretry with backoff and jitter, expiry."""

from __future__ import annotations

import datetime as dt
import importlib
import itertools
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import states
from celeriac.exceptions import MaxRetriesExceededError, TaskRevokedError
from tests.integration.workers import (
    TEST_ENV,
    WorkerProcess,
    broker_url,
    fresh_queues,
    project_env,
)

POLICIES = textwrap.dedent(
    """
    import os, time

    from proj import PREFIX, app, marks


    def attempt(name):
        marks.rpush(f"{PREFIX}:attempts:{name}", repr(time.time()))
        return marks.llen(f"{PREFIX}:attempts:{name}")


    @app.task(bind=True, max_retries=3)
    def send_email(self, to, failures, base):
        # a typical email task, with the network replaced and the countdown scaled down
        if attempt(to) <= failures:
            raise self.retry(exc=ConnectionError("smtp down"),
                             countdown=base * (2 ** self.request.retries))
        return {"status": "sent", "to": to, "retries": self.request.retries}


    @app.task(bind=True, autoretry_for=(ConnectionError,), retry_backoff=0.2,
              retry_backoff_max=0.4, retry_jitter=True, max_retries=4)
    def fetch(self, url):
        marks.rpush(f"{PREFIX}:etas:{url}", self.request.eta or "")  # when it was due
        if attempt(url) <= 3:
            raise ConnectionError("flaky network")
        return url
    """
)


@pytest.fixture(params=["redis", "amqp"])
def policies(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[ModuleType, WorkerProcess]]:
    """A threads worker with the policy tasks, on Redis or on RabbitMQ (results in Redis)."""
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    (tmp_path / "policies.py").write_text(POLICIES)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("proj", "policies"):
        sys.modules.pop(name, None)
    module = importlib.import_module("policies")
    fresh_queues(module.app)
    (tmp_path / "proj.py").write_text(
        (tmp_path / "proj.py").read_text() + "\nimport policies  # noqa: E402,F401\n"
    )
    worker = WorkerProcess(tmp_path, env, "-P", "threads", "-c", "2")
    try:
        worker.wait_ready()
        yield module, worker
    finally:
        worker.stop()
        module.app.close()
        for name in ("proj", "policies"):
            sys.modules.pop(name, None)


def attempts(module: ModuleType, name: str) -> list[float]:
    return [float(v) for v in module.marks.lrange(f"{module.PREFIX}:attempts:{name}", 0, -1)]


def test_retries_wait_their_countdown_in_the_broker(
    policies: tuple[ModuleType, WorkerProcess],
) -> None:
    module, _ = policies
    result = module.send_email.delay("user@test.com", 2, 0.3)
    assert result.get(timeout=20) == {"status": "sent", "to": "user@test.com", "retries": 2}
    times = attempts(module, "user@test.com")
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(times) == 3
    assert 0.3 * 0.9 <= gaps[0] <= 0.3 + 1.5  # 0.3 * 2**0, plus fetch and start-up slack
    assert 0.6 * 0.9 <= gaps[1] <= 0.6 + 1.5  # 0.3 * 2**1


def test_max_retries_ends_in_a_failure_chained_to_the_cause(
    policies: tuple[ModuleType, WorkerProcess],
) -> None:
    module, _ = policies
    result = module.send_email.delay("never@test.com", 99, 0.05)
    with pytest.raises(MaxRetriesExceededError) as info:
        result.get(timeout=20)
    assert "max_retries=3" in str(info.value)
    assert len(attempts(module, "never@test.com")) == 4  # the first run and 3 retries
    assert result.state == states.FAILURE


def test_autoretry_backs_off_with_full_jitter_within_its_cap(
    policies: tuple[ModuleType, WorkerProcess],
) -> None:
    module, _ = policies
    url = "https://example.test"
    assert module.fetch.delay(url).get(timeout=20) == url
    times = attempts(module, url)
    etas = [v.decode() for v in module.marks.lrange(f"{module.PREFIX}:etas:{url}", 0, -1)]
    assert len(times) == 4 and etas[0] == ""  # the first run was not delayed
    due = [dt.datetime.fromisoformat(eta).timestamp() for eta in etas[1:]]
    # Each retry was due within its cap after the attempt that failed (the policy), and
    # ran once due (how late depends on the broker's load, not on the policy).
    waits = [at - ran for at, ran in zip(due, times, strict=False)]
    caps = [0.2, 0.4, 0.4]  # 0.2 * 2**n, capped at retry_backoff_max
    assert all(0 <= wait <= cap + 0.1 for wait, cap in zip(waits, caps, strict=True)), waits
    assert all(ran >= at - 0.05 for at, ran in zip(due, times[1:], strict=True))
    assert times[-1] - times[0] < 20


def test_an_expired_message_is_not_run_and_reads_revoked(
    policies: tuple[ModuleType, WorkerProcess],
) -> None:
    module, worker = policies
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    result = module.send_email.apply_async(("late@test.com", 0, 0.1), expires=past)
    with pytest.raises(TaskRevokedError, match="expired"):
        result.get(timeout=20)
    assert attempts(module, "late@test.com") == []  # never ran
    worker.wait_for_log("expired: discarded")
