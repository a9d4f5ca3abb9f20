"""``app.log``: Celery's logging part of the app, for programs of one's own: the same
set-up as the worker's, once per process, with the ``setup_logging`` contract."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.app.log import TaskFormatter
from celeriac.app.term import colored
from celeriac.log import TASK_LOGGER_NAME, get_task_logger


@pytest.fixture(autouse=True)
def pristine_logging() -> Iterator[None]:
    """Each test starts with logging not set up, and leaves it as it found it."""
    root, task = logging.getLogger(), logging.getLogger(TASK_LOGGER_NAME)
    saved = (root.handlers[:], root.level, task.handlers[:], task.level, task.propagate)
    Celery("probe", broker="memory://", set_as_current=False).log.already_setup = False
    yield
    for logger in (root, task):
        for handler in logger.handlers:
            handler.close()
    root.handlers[:], task.handlers[:] = saved[0], saved[2]
    root.setLevel(saved[1])
    task.setLevel(saved[3])
    task.propagate = saved[4]
    Celery("probe", broker="memory://", set_as_current=False).log.already_setup = False
    logging.captureWarnings(False)


def test_setup_configures_the_root_logger_once_per_process(app: Celery, tmp_path: Path) -> None:
    logfile = tmp_path / "%n.log"
    app.conf.worker_log_format = "[%(levelname)s] %(name)s: %(message)s"
    assert not app.log.already_setup
    assert app.log.setup(loglevel="INFO", logfile=str(logfile), hostname="w1@box") is False
    assert app.log.already_setup
    logging.getLogger("proj").info("hello")
    logging.getLogger("proj").debug("hidden")
    written = (tmp_path / "w1.log").read_text()  # %n: the node name's name part
    assert written == "[INFO] proj: hello\n"
    other = Celery("other", broker="memory://", set_as_current=False)
    assert other.log.already_setup  # shared by every app in the process
    assert other.log.setup_logging_subsystem(loglevel="DEBUG") is None
    assert logging.getLogger().level == logging.INFO


def test_a_setup_logging_receiver_takes_over(app: Celery) -> None:
    seen: list[dict[str, Any]] = []
    before, stdout = logging.getLogger().handlers[:], sys.stdout

    def take_over(sender: Any = None, **kwargs: Any) -> None:
        seen.append(kwargs)

    signals.setup_logging.connect(take_over)
    try:
        assert app.log.setup(loglevel="ERROR", redirect_stdouts=True) is True
    finally:
        signals.setup_logging.disconnect(take_over)
    assert seen[0]["loglevel"] == logging.ERROR and seen[0]["logfile"] is None
    assert logging.getLogger().handlers == before and sys.stdout is stdout


def test_a_setup_logging_receiver_error_is_raised(app: Celery) -> None:
    def broken(sender: Any = None, **kwargs: Any) -> None:
        raise RuntimeError("no logging config")

    signals.setup_logging.connect(broken)
    try:
        with pytest.raises(RuntimeError, match="no logging config"):
            app.log.setup_logging_subsystem()
    finally:
        signals.setup_logging.disconnect(broken)
    assert not app.log.already_setup  # the next attempt runs again


def test_redirect_stdouts_to_logger_logs_each_printed_line(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    logger, stdout = logging.getLogger("proj.prints"), sys.stdout
    with caplog.at_level(logging.INFO, logger="proj.prints"):
        proxy = app.log.redirect_stdouts_to_logger(logger, "INFO", stderr=False)
        try:
            print("from a script")
        finally:
            sys.stdout = stdout
    assert proxy.loglevel == logging.INFO and sys.stderr is not proxy
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [
        ("proj.prints", "INFO", "from a script")
    ]


def test_redirect_stdouts_uses_the_redirected_logger(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    saved = sys.stdout, sys.stderr
    with caplog.at_level(logging.WARNING, logger="celeriac.redirected"):
        app.log.redirect_stdouts()
        try:
            print("oops", file=sys.stderr)
        finally:
            sys.stdout, sys.stderr = saved
    assert [(r.name, r.levelname) for r in caplog.records] == [("celeriac.redirected", "WARNING")]


def test_setup_task_loggers_gives_task_records_their_own_handler(
    app: Celery, tmp_path: Path
) -> None:
    sent: list[Any] = []

    def after(sender: Any = None, logger: Any = None, **kwargs: Any) -> None:
        sent.append((logger, kwargs["format"]))

    app.conf.worker_task_log_format = "%(task_name)s[%(task_id)s] %(levelname)s %(message)s"
    signals.after_setup_task_logger.connect(after)
    try:
        logger = app.log.setup_task_loggers("INFO", logfile=str(tmp_path / "tasks.log"))
    finally:
        signals.after_setup_task_logger.disconnect(after)
    assert logger.name == TASK_LOGGER_NAME and logger.propagate is False
    assert sent == [(logger, app.conf.worker_task_log_format)]

    @app.task
    def report() -> None:
        get_task_logger("app_log_reports").info("made")

    result = report.apply()
    text = (tmp_path / "tasks.log").read_text()
    assert text == f"{report.name}[{result.id}] INFO made\n"


def test_colored_and_the_default_logger(app: Celery, tmp_path: Path) -> None:
    text = colored().red("failed: ", colored().bold("job"))
    assert str(text) == "\033[1;31mfailed: \033[1mjob\033[0m"
    assert text.no_color() == "failed: job" and "x" + colored(enabled=False).green("y") == "xy"
    assert str(app.log.colored(logfile=str(tmp_path / "f.log")).blue("z")) == "z"  # a file
    assert app.log.supports_color(False) is False
    assert app.log.get_default_logger() is logging.getLogger("celeriac")
    assert app.log.get_default_logger("proj") is logging.getLogger("proj")


def test_celerys_task_formatter_colours_the_level() -> None:

    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "broke", None, None)
    assert TaskFormatter("%(task_name)s %(message)s").format(record) == (
        "\033[1;31m??? broke\033[0m"
    )
    assert TaskFormatter("%(task_id)s %(message)s", use_color=False).format(record) == "??? broke"
