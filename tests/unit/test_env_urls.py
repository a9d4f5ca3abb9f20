"""Celery's environment variables for the URLs: ``CELERY_BROKER_URL`` and
``CELERY_RESULT_BACKEND`` come before the settings (as in Celery), the command line's
``-b`` / ``--result-backend`` before them; ``CELERY_BROKER_READ_URL`` and
``CELERY_BROKER_WRITE_URL`` before ``broker_read_url`` and ``broker_write_url``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.brokers.memory import MemoryBroker
from celeriac.cli.base import CLIContext
from celeriac.results.memory import MemoryBackend

VARIABLES = (
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_BROKER_READ_URL",
    "CELERY_BROKER_WRITE_URL",
)


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in VARIABLES:
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("env", set_as_current=False)  # nothing set in code
    try:
        yield app
    finally:
        app.close()


def test_the_variables_stand_in_for_unset_settings(
    app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://")  # read on use, not at import
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "cache+memory://")
    assert (app.conf.broker_url, app.conf.result_backend) == ("memory://", "cache+memory://")
    assert isinstance(app.broker, MemoryBroker) and isinstance(app.backend, MemoryBackend)


def test_the_variables_come_before_urls_given_in_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "memory://from-env")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "cache+memory://")
    app = Celery("env", broker="redis://code:6379/0", backend="redis://code:6379/1",
                 set_as_current=False)  # fmt: skip
    try:
        assert app.conf.broker_url == "memory://from-env"  # Celery's order
        assert app.conf.result_backend == "cache+memory://"
        assert isinstance(app.broker, MemoryBroker) and isinstance(app.backend, MemoryBackend)
    finally:
        app.close()


def test_an_empty_variable_counts_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "")
    app = Celery("env", broker="memory://", set_as_current=False)
    assert app.conf.broker_url == "memory://"


def test_the_command_line_comes_before_the_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"envproj_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        "from celeriac import Celery\napp = Celery('p', set_as_current=False)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://env:6379/0")
    monkeypatch.setenv("CELERY_RESULT_BACKEND", "redis://env:6379/1")
    try:
        app = CLIContext(module, "memory://", "cache+memory://").load_app()
        assert app.conf.broker_url == "memory://"
        assert app.conf.result_backend == "cache+memory://"
    finally:
        sys.modules.pop(module, None)


def test_the_read_and_write_variables_come_before_their_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Celery's order: the variable, then broker_read_url/broker_write_url, then the broker URL
    app = Celery(
        "env", broker="memory://", broker_read_url="redis://setting:6379/1",
        broker_write_url="redis://setting:6379/2", set_as_current=False,
    )  # fmt: skip
    monkeypatch.setenv("CELERY_BROKER_READ_URL", "redis://read:6379/0")
    monkeypatch.setenv("CELERY_BROKER_WRITE_URL", "redis://write:6379/0")
    assert app.conf.broker_read_url == "redis://read:6379/0"
    assert app.broker.url == "redis://write:6379/0"  # Redis's
    assert app.read_broker.url == "redis://read:6379/0"
    app.close()
    monkeypatch.delenv("CELERY_BROKER_READ_URL")
    monkeypatch.delenv("CELERY_BROKER_WRITE_URL")
    same = Celery("env", broker="memory://", set_as_current=False)
    assert same.read_broker is same.broker  # unset: the one broker does both


def test_an_engine_given_to_the_app_is_its_broker_whatever_the_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://env:6379/0")
    engine = MemoryBroker()
    app = Celery("env", broker=engine, set_as_current=False)
    assert app.broker is engine and app.conf.broker_url == "memory://"


def test_the_worker_banner_names_the_read_broker_when_it_differs() -> None:
    from celeriac.worker.banner import _transport

    app = Celery(
        "env", broker_write_url="redis://:pw@w:6379/0", broker_read_url="redis://:pw@r:6379/0",
        set_as_current=False,
    )  # fmt: skip
    assert _transport(app) == "redis://:**@w:6379/0 (consuming from redis://:**@r:6379/0)"
