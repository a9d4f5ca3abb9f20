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
    ) -> None:
        super().__init__(fmt, datefmt)
        self.task_formatter = TaskFormatter(task_fmt, task_datefmt)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "task_id", None) not in _NO_TASK:
            return self.task_formatter.format(record)
        return super().format(record)


def make_handler(logfile: str | None) -> logging.Handler:
    """stderr, or the file (reopened when logrotate moves it away, so no restart is needed)."""
    if logfile:
        return logging.handlers.WatchedFileHandler(logfile, encoding="utf-8")
    return logging.StreamHandler(sys.stderr)


def setup_logging(loglevel: str | int, logfile: str | None, app: Any) -> bool:
    """Configure worker logging for ``app`` at ``loglevel``, to ``logfile`` or stderr.
    True if a ``setup_logging`` receiver took over instead (then nothing was touched).

    With ``worker_hijack_root_logger`` (the default) the root logger's handlers are
    replaced by ours. Without it, handlers already on the root logger are kept and ours
    is added only if there are none, so log lines are never silently lost. The root
    level follows ``-l`` either way.
    """
    level = resolve_level(loglevel)
    conf = app.conf
    handled = signals.setup_logging.send(
        sender=None,
        loglevel=level,
        logfile=logfile,
        format=conf.worker_log_format,
        colorize=False,
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
        colorize=False,
    )
    # Task loggers hang under this one (log.get_task_logger); the root's handler formats
    # their records with worker_task_log_format, so it needs no handler of its own.
    signals.after_setup_task_logger.send(
        sender=None,
        logger=logging.getLogger(TASK_LOGGER_NAME),
        loglevel=level,
        logfile=logfile,
        format=conf.worker_task_log_format,
        colorize=False,
    )
    return False


__all__ = ["LEVELS", "WorkerFormatter", "make_handler", "resolve_level", "setup_logging"]
