"""``result_cache_max`` on a real Redis result store: a success read once is answered
from the reading process afterwards, whatever happens to it in the store; -1 (the
default) reads the store every time, and N keeps the N results used last."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celery, states
from celeriac.result import GroupResult


@pytest.fixture
def apps(redis_url: str, redis_prefix: str) -> Iterator[Callable[..., Celery]]:
    made: list[Celery] = []

    def make(**settings: Any) -> Celery:
        app = Celery(
            "cache", broker="memory://", backend=redis_url, set_as_current=False,
            result_backend_transport_options={"key_prefix": redis_prefix}, **settings,
        )  # fmt: skip
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def test_a_cached_success_is_not_read_from_the_store_again(apps: Any) -> None:
    # Given a reader that caches results, and another process's store writing them
    reader, writer = apps(result_cache_max=0), apps()
    writer.backend.store_result("done-1", 42, states.SUCCESS)
    writer.backend.store_result("failed-1", ValueError("no"), states.FAILURE)
    assert reader.AsyncResult("done-1").get(timeout=5) == 42
    assert reader.AsyncResult("failed-1").state == states.FAILURE
    # When the records change in the store behind the reader's back
    writer.backend.forget("done-1")
    writer.backend.store_result("failed-1", 7, states.SUCCESS)
    # Then the success is answered from the cache (a new handle, get and state alike),
    # while the failure, never cached, is read again
    assert reader.AsyncResult("done-1").get(timeout=1) == 42
    assert reader.AsyncResult("done-1").state == states.SUCCESS
    assert reader.AsyncResult("failed-1").get(timeout=1) == 7
    # And forgetting through the reader drops its copy too
    reader.AsyncResult("done-1").forget()
    assert reader.AsyncResult("done-1").state == states.PENDING


def test_without_the_setting_every_read_goes_to_the_store(apps: Any) -> None:
    reader, writer = apps(), apps()
    writer.backend.store_result("done-2", 1, states.SUCCESS)
    assert reader.AsyncResult("done-2").get(timeout=5) == 1
    writer.backend.forget("done-2")
    assert reader.AsyncResult("done-2").state == states.PENDING


def test_a_limited_cache_keeps_the_results_used_last(apps: Any) -> None:
    reader, writer = apps(result_cache_max=1), apps()
    for task_id in ("a", "b"):
        writer.backend.store_result(task_id, task_id, states.SUCCESS)
    group = reader.GroupResult("g", [reader.AsyncResult("a"), reader.AsyncResult("b")])
    assert group.get(timeout=5) == ["a", "b"]  # "b" read last: the one kept
    writer.backend.forget("a")
    writer.backend.forget("b")
    assert reader.AsyncResult("a").state == states.PENDING
    assert reader.AsyncResult("b").get(timeout=1) == "b"


def test_a_saved_group_is_cached_too(apps: Any) -> None:
    reader, writer = apps(result_cache_max=10), apps()
    writer.GroupResult("g-1", [writer.AsyncResult("x")]).save()
    restored = GroupResult.restore("g-1", app=reader)
    assert restored is not None and [r.id for r in restored.results] == ["x"]
    writer.backend.delete_group("g-1")
    again = GroupResult.restore("g-1", app=reader)
    assert again is not None and [r.id for r in again.results] == ["x"]
    assert GroupResult.restore("g-1", app=writer) is None
