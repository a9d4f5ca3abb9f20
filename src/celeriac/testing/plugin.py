"""The pytest plugin (loaded through the ``pytest11`` entry point): app fixtures.

``celeriac_config`` (override it to change settings) feeds ``celeriac_app``: an app on
the in-process broker and result store, made current for the test and closed after.
Celery's fixture names (``celery_app``, ``celery_config``) are aliases.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac.app.base import Celeriac

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
def celery_config(celeriac_config: dict[str, Any]) -> dict[str, Any]:
    return celeriac_config


@pytest.fixture
def celery_app(celeriac_app: Celeriac) -> Celeriac:
    return celeriac_app
