"""``result_chord_expires`` on a real Redis result store: a chord's join bookkeeping (the
ended header tasks, the tasks added to it) gets its own time to live (0: kept; unset:
``result_expires``), results keep ``result_expires``; a store that cannot warns."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

from celeriac import Celery, states
from celeriac.config import NotInEffectWarning


def _ttls(redis_url: str, prefix: str, part: str) -> dict[str, int]:
    """Time to live in seconds (-1: kept) of each key with ``part`` in its name."""
    with redis.Redis.from_url(redis_url) as client:
        keys = client.scan_iter(match=f"{prefix}*{part}*", count=1000)
        return {key.decode().removeprefix(prefix): int(client.ttl(key)) for key in keys}


@pytest.fixture
def store(redis_url: str, redis_prefix: str) -> Iterator[dict[str, str]]:
    yield {"url": redis_url, "prefix": redis_prefix}


def _app(store: dict[str, str], **settings: object) -> Celery:
    return Celery(
        "chords", broker="memory://", backend=store["url"], set_as_current=False,
        result_backend_transport_options={"key_prefix": store["prefix"]}, **settings,
    )  # fmt: skip


def test_chord_bookkeeping_expires_on_its_own_time(store: dict[str, str]) -> None:
    app = _app(store, result_expires=3600, result_chord_expires=dt.timedelta(seconds=60))
    try:
        backend = app.backend
        # Given a header task that ended and one that added a task to the chord
        assert backend.chord_part_done("g1", "t1", 3) is False
        backend.add_to_chord("g1", "t3", added_by="t2")
        backend.store_result("t1", 1, states.SUCCESS)
        chord = _ttls(store["url"], store["prefix"], "chord:g1")
        # Then every bookkeeping key lives 60 s, the result an hour
        assert len(chord) >= 3 and all(50 < ttl <= 60 for ttl in chord.values()), chord
        [result] = _ttls(store["url"], store["prefix"], "task:t1").values()
        assert 3500 < result <= 3600
    finally:
        app.close()


def test_zero_keeps_it_and_unset_follows_result_expires(store: dict[str, str]) -> None:
    keep, follow = _app(store, result_chord_expires=0), _app(store, result_expires=100)
    try:
        keep.backend.chord_part_done("kept", "t1", 2)
        follow.backend.chord_part_done("follows", "t1", 2)
        assert set(_ttls(store["url"], store["prefix"], "chord:kept").values()) == {-1}
        [ttl] = _ttls(store["url"], store["prefix"], "chord:follows").values()
        assert 90 < ttl <= 100
    finally:
        keep.close()
        follow.close()


def test_a_store_that_cannot_apply_it_warns() -> None:
    app = Celery("chords", broker="memory://", backend="cache+memory://",
                 result_chord_expires=60, set_as_current=False)  # fmt: skip
    with pytest.warns(NotInEffectWarning, match="result_chord_expires is set, but the Memory"):
        _ = app.backend
