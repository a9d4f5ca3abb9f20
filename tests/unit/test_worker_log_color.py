"""``worker_log_color``: the worker's lines are coloured by level on a terminal, as
Celery's (never into a log file, never with ``celeriac -C``)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from celeriac import Celery
from celeriac.app.logsetup import WorkerFormatter, setup_logging, supports_color


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


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


def on_terminal(monkeypatch: pytest.MonkeyPatch) -> Terminal:
    """stderr is a terminal from now on (set in the test body: pytest's capture puts its
    own stderr back between fixtures and the test)."""
    stream = Terminal()
    monkeypatch.setattr("sys.stderr", stream)
    return stream


def _record(level: int, msg: str) -> logging.LogRecord:
    return logging.LogRecord("celeriac.worker", level, __file__, 1, msg, None, None)


def test_levels_get_celerys_colours_and_info_stays_plain() -> None:
    formatter = WorkerFormatter("%(levelname)s %(message)s", "%(message)s", use_color=True)
    assert formatter.format(_record(logging.WARNING, "w")) == "\033[1;33mWARNING w\033[0m"
    assert formatter.format(_record(logging.ERROR, "e")) == "\033[1;31mERROR e\033[0m"
    assert formatter.format(_record(logging.INFO, "i")) == "INFO i"
    plain = WorkerFormatter("%(levelname)s %(message)s", "%(message)s")
    assert plain.format(_record(logging.WARNING, "w")) == "WARNING w"


def test_colour_only_on_a_terminal_without_a_logfile_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    on_terminal(monkeypatch)
    assert supports_color(None, None) and supports_color(True, None)
    assert not supports_color(False, None)
    assert not supports_color(None, "worker.log")
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a pipe, not a terminal
    assert not supports_color(None, None) and not supports_color(True, None)


@pytest.mark.parametrize(
    ("log_color", "no_color", "coloured"),
    [(None, False, True), (False, False, False), (None, True, False)],
)
def test_the_worker_colours_its_lines_per_setting_and_option(
    root_logger: logging.Logger,
    monkeypatch: pytest.MonkeyPatch,
    log_color: bool | None,
    no_color: bool,
    coloured: bool,
) -> None:
    terminal = on_terminal(monkeypatch)
    app = Celery("c", broker="memory://", set_as_current=False, worker_log_color=log_color)
    setup_logging("INFO", None, app, no_color=no_color)
    logging.getLogger("celeriac.worker").warning("careful")
    assert terminal.getvalue().startswith("\033[1;33m") is coloured
    assert "careful" in terminal.getvalue()


def test_a_logfile_is_never_coloured(
    root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    on_terminal(monkeypatch)
    app = Celery("c", broker="memory://", set_as_current=False, worker_log_color=True)
    setup_logging("INFO", str(tmp_path / "w.log"), app)
    logging.getLogger("celeriac.worker").warning("careful")
    for handler in root_logger.handlers:
        handler.flush()
    assert "\033[" not in (tmp_path / "w.log").read_text()
