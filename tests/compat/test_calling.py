"""User guide, "Calling Tasks": delay and apply_async, countdown/eta/expires, linking
callbacks and errbacks, serializers, compression, routing to a queue, custom headers and
reading results — a project written as that chapter teaches, run by real workers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from celeriac import states
from celeriac.exceptions import TaskRevokedError
from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os

import redis

from celeriac import Celery

app = Celery("guide_calling")
app.config_from_object("celeryconfig")
app.conf.accept_content = ["json", "msgpack"]
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


@app.task
def add(x, y):
    return x + y


@app.task(bind=True)
def when(self):
    return {"eta": self.request.eta, "queue": self.request.delivery_info.get("routing_key")}


@app.task
def error_handler(request, exc, traceback):
    notes.rpush(f"{PREFIX}:errors", f"{request.id} raised {exc!r}")


@app.task
def fails():
    raise ZeroDivisionError("divided by zero")


@app.task(bind=True)
def header(self, name):
    return self.request.get(name)
"""


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_calling", PROJECT) as guide:
        worker = guide.worker("-P", "threads", "-c", "4", "-Q", "celery,priority.high")
        try:
            yield guide
        finally:
            assert worker.stop() == 0, worker.text


def test_delay_and_apply_async_with_arguments(guide: Guide) -> None:
    proj = guide.module
    assert proj.add.delay(2, 2).get(timeout=20) == 4
    assert proj.add.apply_async((2, 2)).get(timeout=20) == 4
    assert proj.add.apply_async(args=(1,), kwargs={"y": 5}).get(timeout=20) == 6


def test_countdown_and_eta_delay_the_call(guide: Guide) -> None:
    proj = guide.module
    sent = dt.datetime.now(dt.timezone.utc)
    eta = proj.when.apply_async(countdown=1).get(timeout=20)["eta"]
    assert dt.datetime.fromisoformat(eta) >= sent + dt.timedelta(seconds=1)
    later = sent + dt.timedelta(seconds=1)
    eta = proj.when.apply_async(eta=later).get(timeout=20)["eta"]
    assert dt.datetime.fromisoformat(eta) == later


def test_a_call_that_expired_before_a_worker_took_it_is_revoked(guide: Guide) -> None:
    proj = guide.module
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    result = proj.add.apply_async((1, 1), expires=past)
    with pytest.raises(TaskRevokedError):
        result.get(timeout=20)
    assert result.state == states.REVOKED


def test_linked_callbacks_get_the_result_and_errbacks_the_request(guide: Guide) -> None:
    proj = guide.module
    result = proj.add.apply_async((2, 2), link=proj.add.s(16))
    assert result.get(timeout=20) == 4
    [callback] = result.children  # the link's call is recorded as a child
    assert callback.get(timeout=20) == 20
    failing = proj.fails.apply_async(link_error=proj.error_handler.s())
    with pytest.raises(ZeroDivisionError):
        failing.get(timeout=20)
    _, line = guide.redis().blpop([f"{guide.prefix}:errors"], timeout=20) or (None, "")
    assert line == f"{failing.id} raised ZeroDivisionError('divided by zero')"


def test_serializer_and_compression_per_call(guide: Guide) -> None:
    proj = guide.module
    assert proj.add.apply_async((1, 2), serializer="msgpack").get(timeout=20) == 3
    assert proj.add.apply_async(("a" * 5000, "b"), compression="zlib").get(timeout=20) == (
        "a" * 5000 + "b"
    )


def test_routing_a_call_to_a_queue(guide: Guide) -> None:
    proj = guide.module
    assert proj.when.apply_async(queue="priority.high").get(timeout=20)["queue"] == (
        "priority.high"
    )


def test_custom_headers_reach_the_task(guide: Guide) -> None:
    proj = guide.module
    result = proj.header.apply_async(("tenant",), headers={"tenant": "acme"})
    assert result.get(timeout=20) == "acme"


def test_results_propagate_or_not(guide: Guide) -> None:
    result = guide.module.fails.delay()
    error = result.get(timeout=20, propagate=False)
    assert isinstance(error, ZeroDivisionError)
    assert result.failed() and not result.successful()
    assert result.traceback and "ZeroDivisionError" in result.traceback
