"""Celery 5.7 and celeriac on the same Redis queues (kombu's layout, ``kombu+redis://``)
and result store, with ``wire_format = "celery"``: the cases of ``interop_cases.py`` in
both directions (a Celery producer's calls on a celeriac worker started from the CLI, a
celeriac producer's on a Celery worker), how a celeriac producer's message is stored, and
where a celeriac producer's countdown waits. Both sides use one ``global_keyprefix`` of the
module's own, for the queues and for the results, so Celery's default queue (``celery``)
is used exactly as Celery makes it.

The project (``interop_project.py``) serves both sides; Celery runs from its own virtualenv
(``celery_peer.py``: skipped without it).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import redis

from tests.integration.celery_peer import (
    CeleryWorker,
    celery_env,
    delete_keys,
    skip_without_celery,
)
from tests.integration.interop_cases import (
    APP,
    CeleriacProducerCeleryWorker,
    CeleriacSide,
    CeleryProducerCeleriacWorker,
)
from tests.integration.workers import ROOT

skip_without_celery()


@pytest.fixture(scope="module")
def interop(redis_url: str) -> Iterator[dict[str, Any]]:
    """A key prefix of this module's own, for the queues and the results."""
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}:"
    settings = {"INTEROP_BROKER": redis_url, "INTEROP_REDIS": redis_url, "INTEROP_PREFIX": prefix}
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    try:
        yield {"env": env, "settings": settings, "prefix": prefix}
    finally:
        delete_keys(redis_url, prefix)


def stored_envelopes(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Every message waiting on the lists of Celery's default queue."""
    found: list[dict[str, Any]] = []
    for key in client.scan_iter(match=f"{prefix}celery*"):
        if client.type(key) == b"list":
            found += [json.loads(item) for item in client.lrange(key, 0, -1)]
    return found


class TestWhatACeleriacProducerStores(CeleriacSide):
    def test_a_celery_worker_runs_what_celeriac_sent(
        self, interop: dict[str, Any], proj: ModuleType, redis_url: str
    ) -> None:
        result = proj.who.delay(2, 3)
        # Stored as kombu's Redis transport stores a Celery message, before any worker runs.
        client = redis.Redis.from_url(redis_url)
        try:
            [stored] = stored_envelopes(client, interop["prefix"])
        finally:
            client.close()
        assert (stored["content-type"], stored["content-encoding"]) == (
            "application/json", "utf-8"
        )  # fmt: skip
        assert (stored["headers"]["task"], stored["headers"]["id"]) == ("interop.who", result.id)
        properties = stored["properties"]
        assert list(properties) == [
            "correlation_id", "reply_to", "delivery_mode", "delivery_info", "priority",
            "body_encoding", "delivery_tag",
        ]  # fmt: skip
        assert properties["correlation_id"] == result.id and properties["delivery_mode"] == 2
        assert properties["delivery_info"] == {"exchange": "", "routing_key": "celery"}
        assert json.loads(base64.b64decode(stored["body"]))[:2] == [[2, 3], {}]

        worker = CeleryWorker.started(ROOT, celery_env(interop["env"], ROOT), app=APP)
        try:
            assert result.get(timeout=15) == {"sum": 5, "side": "celery", "id": result.id}
        finally:
            worker.kill()
        assert f"Task interop.who[{result.id}] received" in worker.text, worker.text


class TestCeleryProducerCeleriacWorker(CeleryProducerCeleriacWorker):
    """Celery sends, the celeriac worker runs the calls, and Celery's AsyncResult reads
    the results."""


class TestCeleriacProducerCeleryWorker(CeleriacProducerCeleryWorker):
    """celeriac sends, a Celery worker runs the calls, and celeriac's AsyncResult reads
    what Celery stored."""

    def test_a_countdown_waits_where_only_celeriac_workers_look(
        self, interop: dict[str, Any], proj: ModuleType, redis_url: str
    ) -> None:
        # A celeriac producer's countdown waits in celeriac's delayed set; a celeriac
        # worker's fetch moves it to kombu's list once due. Celery's workers look only at
        # the lists: where no celeriac worker consumes the queue, it waits.
        broker = proj.app.broker
        proj.when.apply_async(countdown=60)
        try:
            assert (broker.delayed_count("celery"), broker.queue_length("celery")) == (1, 0)
            client = redis.Redis.from_url(redis_url)
            assert stored_envelopes(client, interop["prefix"]) == []
            client.close()
        finally:
            broker.purge("celery")
