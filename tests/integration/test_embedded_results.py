"""With neither a broker nor a result backend configured, results live in the embedded Redis
too (its database 1), so ``delay()`` and ``.get()`` work with no setting at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.brokers import embedded
from celeriac.brokers.embedded import EmbeddedServer, stop_embedded
from celeriac.testing import drain
from tests.integration.test_embedded_broker import require_package, run_child


@pytest.fixture
def project(
    tmp_path: Path, embedded_state: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A project directory (the cwd) whose embedded server lives in a directory of the
    test's own."""
    require_package()
    monkeypatch.setenv(embedded.ENV_DIR, str(embedded_state))
    for variable in ("CELERY_BROKER_URL", "CELERY_RESULT_BACKEND"):
        monkeypatch.delenv(variable, raising=False)
    directory = tmp_path / "proj"
    directory.mkdir()
    monkeypatch.chdir(directory)
    try:
        yield directory
    finally:
        stop_embedded(directory)


def test_results_default_to_the_embedded_redis_and_other_processes_read_them(
    project: Path,
) -> None:
    from celeriac.results.redis import RedisBackend

    app = Celery("emb", set_as_current=False)  # no broker=, no backend=
    try:

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        result = add.delay(2, 3)
        assert drain(app) == 1
        assert result.get(timeout=5) == 5
        server = EmbeddedServer(project)
        assert isinstance(app.backend, RedisBackend)
        assert app.backend.url == f"unix://{server.socket}?db=1"  # queues are in db 0
    finally:
        app.close()
    child = """
        import sys
        from celeriac import Celery

        app = Celery("emb")
        print(app.AsyncResult(sys.argv[1]).get(timeout=5))
    """
    assert run_child(child, result.id, cwd=project) == ["5"]
