"""Worker logging: Celery-style lines on stderr or a log file, set up once at start.

Runtime layer (imports ``log``, ``signals`` and the app's settings only). Celery's
contract holds: if anything receives ``setup_logging``, the user owns logging and we
touch nothing; otherwise we configure the root logger, then fire ``after_setup_logger``
and ``after_setup_task_logger``.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any

from celeriac import signals
from celeriac.log import TASK_LOGGER_NAME, TaskFormatter

#: Level names ``-l`` accepts (any case); WARN and FATAL are the stdlib's aliases.
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_ALIASES = {"WARN": "WARNING", "FATAL": "CRITICAL"}
_NO_TASK = (None, "", "???")
#: Bold ANSI colours by level, as Celery's (INFO stays plain); ``_RESET`` ends one.
LEVEL_COLORS = {
    "DEBUG": "\033[1;34m",
    "WARNING": "\033[1;33m",
    "ERROR": "\033[1;31m",
    "CRITICAL": "\033[1;35m",
}
_RESET = "\033[0m"


def resolve_level(loglevel: str | int) -> int:
    """``'info'`` -> ``logging.INFO``; a number is taken as is. ValueError if unknown."""
    if isinstance(loglevel, int):
        return loglevel
    name = loglevel.strip().upper()
    name = _ALIASES.get(name, name)
    if name.isdigit():
        return int(name)
    if name not in LEVELS:
        raise ValueError(f"unknown log level {loglevel!r}: use one of {', '.join(LEVELS)}")
    return int(logging.getLevelName(name))


class WorkerFormatter(logging.Formatter):
    """Formats a record with the task format when it carries a real task id, else plainly.

    Records from ``get_task_logger`` loggers carry ``task_id``/``task_name`` (``???``
    outside a task); those inside a task get ``worker_task_log_format``.
    """

    def __init__(
        self,
        fmt: str,
        task_fmt: str,
        datefmt: str | None = None,
        task_datefmt: str | None = None,
        use_color: bool = False,
    ) -> None:
        super().__init__(fmt, datefmt)
        self.task_formatter = TaskFormatter(task_fmt, task_datefmt)
        self.use_color = use_color

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_id", None) not in _NO_TASK:
            text = self.task_formatter.format(record)
        else:
            text = super().format(record)
        color = LEVEL_COLORS.get(record.levelname) if self.use_color else None
        return f"{color}{text}{_RESET}" if color else text


def supports_color(log_color: bool | None, logfile: str | None) -> bool:
    """Colour the lines? ``worker_log_color`` False never does; True or unset (None) do
    when the lines go to stderr and stderr is a terminal, as Celery (never into a file)."""
    if log_color is False or logfile:
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object that is not a file, or closed
        return False


def make_handler(logfile: str | None) -> logging.Handler:
    """stderr, or the file (reopened when logrotate moves it away, so no restart is needed)."""
    if logfile:
        return logging.handlers.WatchedFileHandler(logfile, encoding="utf-8")
    return logging.StreamHandler(sys.stderr)


def setup_logging(
    loglevel: str | int, logfile: str | None, app: Any, *, no_color: bool = False
) -> bool:
    """Configure worker logging for ``app`` at ``loglevel``, to ``logfile`` or stderr.
    True if a ``setup_logging`` receiver took over instead (then nothing was touched).
    Levels are coloured per ``supports_color`` unless ``no_color`` (``celeriac -C``).

    With ``worker_hijack_root_logger`` (the default) the root logger's handlers are
    replaced by ours. Without it, handlers already on the root logger are kept and ours
    is added only if there are none, so log lines are never silently lost. The root
    level follows ``-l`` either way.
    """
    level = resolve_level(loglevel)
    conf = app.conf
    colorize = not no_color and supports_color(conf.worker_log_color, logfile)
    handled = signals.setup_logging.send(
        sender=None,
        loglevel=level,
        logfile=logfile,
        format=conf.worker_log_format,
        colorize=colorize,
    )
    if handled:  # Celery semantics: a connected receiver means "I configure logging"
        return True
    root = logging.getLogger()
    if conf.worker_hijack_root_logger:
        for old in list(root.handlers):  # removed, not closed: their owner may still use them
            root.removeHandler(old)
    if not root.handlers:
        handler = make_handler(logfile)
        handler.setFormatter(
            WorkerFormatter(
                conf.worker_log_format,
                conf.worker_task_log_format,
                conf.worker_log_datefmt,
                conf.worker_task_log_datefmt,
                use_color=colorize,
            )
        )
        root.addHandler(handler)
    root.setLevel(level)
    signals.after_setup_logger.send(
        sender=None,
        logger=root,
        loglevel=level,
        logfile=logfile,
        format=conf.worker_log_format,
        colorize=colorize,
    )
    # Task loggers hang under this one (log.get_task_logger); the root's handler formats
    # their records with worker_task_log_format, so it needs no handler of its own.
    signals.after_setup_task_logger.send(
        sender=None,
        logger=logging.getLogger(TASK_LOGGER_NAME),
        loglevel=level,
        logfile=logfile,
        format=conf.worker_task_log_format,
        colorize=colorize,
    )
    return False


__all__ = [
    "LEVELS",
    "LEVEL_COLORS",
    "WorkerFormatter",
    "make_handler",
    "resolve_level",
    "setup_logging",
    "supports_color",
]
