"""``result_failure_expires`` on a real Redis result store: failures get their own time to
live (0: kept), successes keep ``result_expires``; a store that cannot warns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

from celeriac import Celery, states
from celeriac.config import NotInEffectWarning


def _ttls(redis_url: str, prefix: str) -> dict[str, int]:
    """Each task record's time to live in seconds (-1: kept), by task id."""
    with redis.Redis.from_url(redis_url) as client:
        keys = client.scan_iter(match=f"{prefix}*task*", count=1000)
        return {key.decode().rsplit(":", 1)[-1]: int(client.ttl(key)) for key in keys}


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[dict[str, str]]:
    yield {"url": redis_url, "prefix": redis_prefix}


def _app(store: dict[str, str], **settings: object) -> Celery:
    return Celery(
        "failures", broker="memory://", backend=store["url"], set_as_current=False,
        result_backend_transport_options={"key_prefix": store["prefix"]}, **settings,
    )  # fmt: skip


def test_failures_expire_on_their_own_time(store: dict[str, str]) -> None:
    app = _app(store, result_expires=3600, result_failure_expires=dt.timedelta(seconds=60))
    try:
        app.backend.store_result("ok", 1, states.SUCCESS)
        app.backend.store_result("bad", ValueError("no"), states.FAILURE)
        app.backend.store_result("gone", None, states.REVOKED)
        ttls = _ttls(store["url"], store["prefix"])
        assert 50 < ttls["bad"] <= 60
        assert 3500 < ttls["ok"] <= 3600 and 3500 < ttls["gone"] <= 3600
    finally:
        app.close()


def test_zero_keeps_failures_and_unset_follows_result_expires(store: dict[str, str]) -> None:
    keep, follow = _app(store, result_failure_expires=0), _app(store, result_expires=100)
    try:
        keep.backend.store_result("kept", ValueError("no"), states.FAILURE)
        follow.backend.store_result("follows", ValueError("no"), states.FAILURE)
        ttls = _ttls(store["url"], store["prefix"])
        assert ttls["kept"] == -1 and 90 < ttls["follows"] <= 100
    finally:
        keep.close()
        follow.close()


def test_a_store_that_cannot_apply_it_warns() -> None:
    app = Celery("failures", broker="memory://", backend="cache+memory://",
                 result_failure_expires=60, set_as_current=False)  # fmt: skip
    with pytest.warns(NotInEffectWarning, match="MemoryBackend result store does not apply"):
        _ = app.backend


@pytest.mark.parametrize("never", [0, None, dt.timedelta(0)])
def test_result_expires_of_zero_or_none_keeps_results_forever(
    store: dict[str, str], never: object
) -> None:
    app = _app(store, result_expires=never)  # Celery: None or 0 never expires
    try:
        app.backend.store_result("kept", 1, states.SUCCESS)
        assert _ttls(store["url"], store["prefix"])["kept"] == -1
        assert app.AsyncResult("kept").get(timeout=1) == 1
    finally:
        app.close()
