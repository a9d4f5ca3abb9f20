"""Celery 5.7 and celeriac on the same RabbitMQ queues and Redis result store
(``wire_format = "celery"``): the cases of ``interop_cases.py`` in both directions (a
Celery producer's calls on a celeriac worker started from the CLI, a celeriac producer's on
a Celery worker), and the queue topology each side declares.

The project (``interop_project.py``) serves both sides; Celery runs from its own virtualenv
(``celery_peer.py``: skipped without it). The tests use a vhost of their own, so Celery's
default names (exchange and queue ``celery``) are used exactly as Celery makes them, and a
key prefix of their own for results.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.conftest import delete_vhost, rabbitmqctl
from tests.integration.celery_peer import delete_keys, skip_without_celery
from tests.integration.interop_cases import (
    CeleriacProducerCeleryWorker,
    CeleryProducerCeleriacWorker,
    countdown_on_a_celery_worker,
    produce,
)

skip_without_celery()


@pytest.fixture(scope="module")
def interop(amqp_url: str, redis_url: str) -> Iterator[dict[str, Any]]:
    """A vhost and a result key prefix of this module's own."""
    vhost = f"celeriac-interop-{uuid.uuid4().hex[:10]}"
    rabbitmqctl("add_vhost", vhost)
    rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}:"
    settings = {
        "INTEROP_BROKER": f"amqp://{urlsplit(amqp_url).netloc}/{vhost}",
        "INTEROP_REDIS": redis_url,
        "INTEROP_PREFIX": prefix,
    }
    env = {**os.environ, **settings, "PYTHONUNBUFFERED": "1"}
    try:
        yield {"env": env, "vhost": vhost, "settings": settings}
    finally:
        delete_vhost(vhost)
        delete_keys(redis_url, prefix)


def queue_arguments(vhost: str) -> dict[str, str]:
    listed = rabbitmqctl(
        "list_queues", "-p", vhost, "-q", "--no-table-headers", "name", "arguments"
    )
    return dict(line.split("\t", 1) for line in listed.strip().splitlines() if "\t" in line)


class TestCeleryProducerCeleriacWorker(CeleryProducerCeleriacWorker):
    """Celery declares its queues and sends first; the celeriac worker declares them again
    (no PRECONDITION_FAILED), runs the calls, and Celery's AsyncResult reads the results."""

    @classmethod
    def before_the_celeriac_worker(cls, interop: dict[str, Any]) -> None:
        assert produce(interop, "declare", "interop-quorum") == "declared"

    def test_the_topology_is_celerys(self, interop: dict[str, Any]) -> None:
        vhost = interop["vhost"]
        arguments = queue_arguments(vhost)
        assert arguments["celery"] == "[]", "the queue Celery declares has no arguments"
        bindings = rabbitmqctl(
            "list_bindings", "-p", vhost, "-q", "--no-table-headers",
            "source_name", "destination_name", "routing_key",
        )  # fmt: skip
        assert "celery\tcelery\tcelery" in bindings.splitlines()
        # A quorum queue Celery declared is declared again by celeriac as it is.
        from celeriac import Celery

        app = Celery(
            "check", broker=interop["settings"]["INTEROP_BROKER"], wire_format="celery",
            task_queues={"interop-quorum": {"queue_arguments": {"x-queue-type": "quorum"},
                                            "exchange": "interop-quorum"},
                         "interop-quorum-2": {"queue_arguments": {"x-queue-type": "quorum"},
                                              "exchange": "interop-quorum-2"}},
        )  # fmt: skip
        try:
            app.broker.declare_queue("interop-quorum")
            app.broker.declare_queue("interop-quorum-2")  # celeriac first, Celery after
            assert produce(interop, "declare", "interop-quorum-2") == "declared"
        finally:
            app.close()
        arguments = queue_arguments(vhost)
        for name in ("interop-quorum", "interop-quorum-2"):
            assert "x-queue-type" in arguments[name] and "quorum" in arguments[name]
            assert "x-delivery-limit" not in arguments[name]


class TestCeleriacProducerCeleryWorker(CeleriacProducerCeleryWorker):
    """celeriac sends (declaring the queue as Celery does), a Celery worker runs the calls,
    and celeriac's AsyncResult reads what Celery stored."""

    def test_countdown_waits_for_its_eta(self, proj: ModuleType) -> None:
        # celeriac's delay queues hold it in RabbitMQ, which hands it to the queue when due.
        ran = countdown_on_a_celery_worker(proj)
        assert ran["side"] == "celery" and ran["eta"] is True
        assert ran["after"] >= 1.5 - 0.05, "ran before its eta"
