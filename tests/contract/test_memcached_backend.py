"""The result-backend contract against a real memcached of the tests' own, and what only the
memcached store promises: expiries as memcached reads them, several servers, any task id
as a key, the client options, and connection errors naming the servers."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac.exceptions import BackendConnectionError, ImproperlyConfigured
from celeriac.results.base import ResultBackend
from celeriac.testing.contracts import BackendFactory, ResultBackendContract
from tests.memcached_server import memcached_server

pymemcache = pytest.importorskip("pymemcache", reason="needs celeriac[memcached]")
from celeriac.results.memcached import (  # noqa: E402  (after the skip without pymemcache)
    KEY_PREFIX,
    MAX_RELATIVE_EXPIRES,
    MemcachedBackend,
    memcached_expiry,
)

Maker = Callable[..., MemcachedBackend]


@pytest.fixture(scope="module")
def memcached() -> Iterator[str]:
    with memcached_server() as address:
        yield address


@pytest.fixture
def make_memcached(memcached: str) -> Iterator[Maker]:
    """Builds stores on the tests' memcached; closes every one at teardown."""
    made: list[MemcachedBackend] = []

    def make(servers: list[str] | None = None, **options: Any) -> MemcachedBackend:
        backend = MemcachedBackend(servers or [memcached], **options)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


class TestMemcachedBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, make_memcached: Maker) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return make_memcached(expires=expires)

        return make


def _id() -> str:
    return f"memcached-{uuid.uuid4().hex}"
