"""The worker decides by what an engine declares it can do, never by which class it is.

A broker that lives inside one process (``shares_across_processes = False``) cannot serve
prefork children, whatever engine it is: the worker runs threads instead and says why.
"""

from __future__ import annotations

import logging

import pytest

from celeriac import Celery
from celeriac.brokers.redis import RedisBroker
from celeriac.worker.worker import Worker


class OneProcessRedis(RedisBroker):
    """An engine of a user's own that keeps part of its state in this process."""

    shares_across_processes = False


def _pool_chosen(app: Celery) -> str:
    worker = Worker(app, pool="prefork", concurrency=2, install_signal_handlers=False)
    return worker.pool_name


def test_prefork_on_the_in_process_broker_runs_threads_and_says_why(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celery("caps", broker="memory://", backend="cache+memory://", set_as_current=False)
    try:
        with caplog.at_level(logging.WARNING, logger="celeriac.worker"):
            assert _pool_chosen(app) == "threads"
        [record] = [r for r in caplog.records if "threads pool" in r.getMessage()]
        assert "memory:// broker lives inside one process" in record.getMessage()
    finally:
        app.close()


def test_any_engine_that_does_not_share_across_processes_gets_threads(
    redis_url: str, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    broker = OneProcessRedis(redis_url, transport_options={"key_prefix": redis_prefix})
    app = Celery("caps", broker=broker, backend="cache+memory://", set_as_current=False)
    try:
        with caplog.at_level(logging.WARNING, logger="celeriac.worker"):
            assert _pool_chosen(app) == "threads"
        assert any(
            "redis:// broker lives inside one process" in r.getMessage() for r in caplog.records
        )
    finally:
        app.close()


def test_prefork_stays_prefork_on_a_broker_other_processes_reach(
    redis_url: str, redis_prefix: str
) -> None:
    broker = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})
    app = Celery("caps", broker=broker, set_as_current=False)
    try:
        assert _pool_chosen(app) == "prefork"
    finally:
        app.close()
