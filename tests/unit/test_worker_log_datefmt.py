"""``worker_log_datefmt`` and ``worker_task_log_datefmt`` format ``%(asctime)s`` in the
worker's lines and in task lines, each on its own (Celery's settings)."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac._context import pop_request, push_request
from celeriac.app.logsetup import setup_logging
from celeriac.log import get_task_logger
from celeriac.request import Request


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def test_each_kind_of_line_gets_its_own_date_format(
    root_logger: logging.Logger, tmp_path: Path
) -> None:
    app = Celery(
        "datefmt", broker="memory://", set_as_current=False,
        worker_log_format="%(asctime)s W %(message)s", worker_log_datefmt="%Y",
        worker_task_log_format="%(asctime)s T %(message)s", worker_task_log_datefmt="%j",
    )  # fmt: skip
    logfile = tmp_path / "worker.log"
    setup_logging("INFO", str(logfile), app)
    logging.getLogger("celeriac.worker").info("ready")
    token = push_request(Request(id="abc", task="proj.add"))
    try:
        get_task_logger("proj.tasks").info("adding")
    finally:
        pop_request(token)
    for handler in root_logger.handlers:
        handler.flush()
    now = dt.datetime.now()
    assert logfile.read_text().splitlines() == [
        f"{now:%Y} W ready",
        f"{now:%j} T adding",
    ]
