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
