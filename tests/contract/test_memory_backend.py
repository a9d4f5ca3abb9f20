"""The result-backend contract, run against ``cache+memory://``."""

from __future__ import annotations

import pytest

from celeriac.results.base import ResultBackend
from celeriac.results.memory import MemoryBackend
from celeriac.testing.contracts import BackendFactory, ResultBackendContract


class TestMemoryBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return MemoryBackend(expires=expires)

        return make
