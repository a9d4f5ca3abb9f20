"""User guide, "Routing Tasks": automatic routing with task_routes (names, globs, router
functions), a default queue, workers consuming chosen queues, and message priorities —
a project written as that chapter teaches, on Redis and on RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac.exceptions import QueueNotFound
from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os

import redis

from celeriac import Celery

app = Celery("guide_routing")
app.config_from_object("celeryconfig")
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)


def route_task(name, args, kwargs, options, task=None, **kw):
    if name == "guide_routing.resize" and kwargs.get("big"):
        return {"queue": "images.big"}
    return None


app.conf.task_default_queue = "default"
app.conf.task_routes = [
    route_task,
    {"guide_routing.feeds.*": {"queue": "feeds"}, "guide_routing.resize": "images"},
]


@app.task(bind=True)
def resize(self, big=False):
    return self.request.delivery_info["routing_key"]


@app.task(name="guide_routing.feeds.import_feed", bind=True)
def import_feed(self, url):
    return self.request.delivery_info["routing_key"]


@app.task(bind=True)
def anywhere(self):
    return self.request.delivery_info["routing_key"]


@app.task
def record(tag):
    notes.rpush(f"{PREFIX}:order", tag)
"""


@pytest.fixture(scope="module", params=["redis", "amqp"])
def guide(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guide]:
    broker = request.getfixturevalue("amqp_url") if request.param == "amqp" else ""
    with guide_project(tmp_path_factory, "guide_routing", PROJECT, broker=broker) as guide:
        queues = "default,feeds,images,images.big"
        worker = guide.worker("-P", "threads", "-c", "4", "-Q", queues)
        try:
            yield guide
        finally:
            assert worker.stop() == 0, worker.text


def test_routes_by_name_glob_and_router_function(guide: Guide) -> None:
    proj = guide.module
    assert proj.import_feed.delay("http://x").get(timeout=20) == "feeds"
    assert proj.resize.delay().get(timeout=20) == "images"
    assert proj.resize.delay(big=True).get(timeout=20) == "images.big"
    assert proj.anywhere.delay().get(timeout=20) == "default"


def test_the_queue_option_wins_over_routes(guide: Guide) -> None:
    assert guide.module.import_feed.apply_async(("u",), queue="images").get(timeout=20) == (
        "images"
    )


def test_undeclared_queues_can_be_refused(guide: Guide) -> None:
    proj = guide.module
    proj.app.conf.task_queues = ["default", "feeds", "images", "images.big"]
    proj.app.conf.task_create_missing_queues = False
    try:
        with pytest.raises(QueueNotFound):
            proj.anywhere.apply_async(queue="nowhere")
    finally:
        proj.app.conf.task_create_missing_queues = True
        proj.app.conf.task_queues = None


def test_higher_priority_messages_are_served_first(guide: Guide) -> None:
    proj = guide.module
    for tag, priority in (("low", 0), ("high", 9), ("middle", 5)):
        proj.record.apply_async((tag,), queue="waiting", priority=priority)
    worker = guide.worker("-P", "solo", "-Q", "waiting")  # takes one message at a time
    try:
        client = guide.redis()
        order = [client.blpop([f"{guide.prefix}:order"], timeout=20) for _ in range(3)]
    finally:
        assert worker.stop() == 0, worker.text
    assert [item[1] for item in order if item] == ["high", "middle", "low"]
