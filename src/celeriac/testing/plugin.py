"""The pytest plugin (loaded through the ``pytest11`` entry point): app and worker fixtures.

``celeriac_config`` (override it to change settings) feeds ``celeriac_app``: an app on
the in-process broker and result store, made current for the test and closed after.
Celery's fixture names (``celery_app``, ``celery_config``) are aliases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.app.base import Celeriac
from celeriac.testing.worker import start_worker
from celeriac.worker.worker import Worker

# Contract suites are assert-heavy library code: rewrite them so failures show values.
# (Must run before they are imported; this module does not import them.)
pytest.register_assert_rewrite("celeriac.testing.contracts")


@pytest.fixture
def celeriac_config() -> dict[str, Any]:
    """Settings for ``celeriac_app``; override this fixture in your conftest."""
    return {"broker_url": "memory://", "result_backend": "cache+memory://"}


@pytest.fixture
def celeriac_app(celeriac_config: dict[str, Any]) -> Iterator[Celeriac]:
    """A fresh app on the in-process broker, current for the duration of the test."""
    app = Celeriac("celeriac.testing", set_as_current=True, **celeriac_config)
    try:
        yield app
    finally:
        app.close()


@pytest.fixture
def celeriac_worker_pool() -> str:
    """The pool of ``celeriac_worker``; override it to test with another pool."""
    return "threads"


@pytest.fixture
def celeriac_worker_parameters() -> dict[str, Any]:
    """Extra ``Worker`` options for ``celeriac_worker`` (concurrency, queues, ...)."""
    return {}


@pytest.fixture
def celeriac_worker(
    celeriac_app: Celeriac, celeriac_worker_pool: str, celeriac_worker_parameters: dict[str, Any]
) -> Iterator[Worker]:
    """A real worker consuming ``celeriac_app``'s queues in a thread during the test."""
    with start_worker(
        celeriac_app, pool=celeriac_worker_pool, **celeriac_worker_parameters
    ) as worker:
        yield worker


@pytest.fixture
def celery_worker(celeriac_worker: Worker) -> Worker:
    return celeriac_worker


@pytest.fixture
def celery_config(celeriac_config: dict[str, Any]) -> dict[str, Any]:
    return celeriac_config


@pytest.fixture
def celery_app(celeriac_app: Celeriac) -> Celeriac:
    return celeriac_app
