"""``celery.contrib.testing.worker.setup_app_for_worker``: the app current and default,
and log lines going where a worker started with ``-l LEVEL -f FILE`` would send them."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery, current_app
from celeriac._state import get_current_app
from celeriac.contrib.testing.worker import setup_app_for_worker


@pytest.fixture
def root_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)


def test_the_app_is_current_and_default_and_logs_go_to_the_file(
    tmp_path: Path, root_logging: None
) -> None:
    app = Celery("embedded", broker="memory://", set_as_current=False)
    logfile = tmp_path / "worker.log"
    setup_app_for_worker(app, "INFO", str(logfile))
    assert app.finalized and get_current_app() is app
    assert current_app._get_current_object() is app
    logging.getLogger("embedded.part").info("hello from the test worker")
    logging.getLogger("embedded.part").debug("below the level")
    for handler in logging.getLogger().handlers:
        handler.flush()
    text = logfile.read_text()
    assert "hello from the test worker" in text and "below the level" not in text


def test_a_test_app_leaves_logging_alone_unless_asked(root_logging: None) -> None:
    from celeriac.app.log import Logging
    from celeriac.contrib.testing.app import TestApp, UnitLogging

    quiet = TestApp()
    assert isinstance(quiet.log, UnitLogging) and quiet.log.already_setup
    handlers = list(logging.getLogger().handlers)
    quiet.log.setup(loglevel="DEBUG")  # already set up: nothing changes
    assert logging.getLogger().handlers == handlers
    assert type(TestApp(enable_logging=True).log) is Logging


def test_start_worker_runs_a_test_work_controller() -> None:
    from celeriac.contrib.testing.app import TestApp
    from celeriac.contrib.testing.worker import TestWorkController, start_worker

    app = TestApp()

    @app.task(name="t.double")
    def double(x: int) -> int:
        return 2 * x

    with start_worker(app, perform_ping_check=False) as worker:
        assert isinstance(worker, TestWorkController)
        worker.ensure_started(timeout=5)
        assert double.delay(21).get(timeout=10) == 42
