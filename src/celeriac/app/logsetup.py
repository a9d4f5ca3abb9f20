"""Program logging: Celery-style lines on stderr or a log file, set up once at start.

App core (imports ``log``, ``signals`` and the app's settings only), so the app's
``app.log`` and the worker, beat and other programs share it. Celery's
contract holds: if anything receives ``setup_logging``, the user owns logging and we
touch nothing; otherwise we configure the root logger, then fire ``after_setup_logger``
and ``after_setup_task_logger``.
"""

from __future__ import annotations

import logging
import re
import socket
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
        from logging.handlers import WatchedFileHandler  # (large: only for a log file)

        return WatchedFileHandler(logfile, encoding="utf-8")
    return logging.StreamHandler(sys.stderr)


#: Whether this process's logging was set up (Celery's ``app.log.already_setup``).
_STATE = {"configured": False}


def already_setup() -> bool:
    return _STATE["configured"]


def mark_setup(done: bool) -> None:
    _STATE["configured"] = done


def setup_logging(
    loglevel: str | int,
    logfile: str | None,
    app: Any,
    *,
    no_color: bool = False,
    colorize: bool | None = None,
    format: str | None = None,
    datefmt: str | None = None,
) -> bool:
    """Configure logging for ``app`` at ``loglevel``, to ``logfile`` or stderr.
    True if a ``setup_logging`` receiver took over instead (then nothing was touched;
    a receiver's exception is raised, as Celery's). Levels are coloured per
    ``supports_color`` (``colorize`` in place of ``worker_log_color``) unless
    ``no_color`` (``celeriac -C``); ``format``/``datefmt`` replace ``worker_log_format``
    and ``worker_log_datefmt``.

    With ``worker_hijack_root_logger`` (the default) the root logger's handlers are
    replaced by ours. Without it, handlers already on the root logger are kept and ours
    is added only if there are none, so log lines are never silently lost. The root
    level follows ``-l`` either way.
    """
    level = resolve_level(loglevel)
    conf = app.conf
    log_color = conf.worker_log_color if colorize is None else colorize
    colorize = not no_color and supports_color(log_color, logfile)
    format = format or conf.worker_log_format
    mark_setup(True)
    handled = signals.setup_logging.send(
        sender=None, loglevel=level, logfile=logfile, format=format, colorize=colorize
    )
    for _receiver, response in handled:
        if isinstance(response, Exception):
            mark_setup(False)
            raise response
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
                format,
                conf.worker_task_log_format,
                conf.worker_log_datefmt if datefmt is None else datefmt,
                conf.worker_task_log_datefmt,
                use_color=colorize,
            )
        )
        root.addHandler(handler)
    root.setLevel(level)
    signals.after_setup_logger.send(
        sender=None, logger=root, loglevel=level, logfile=logfile, format=format,
        colorize=colorize,
    )  # fmt: skip
    # Task loggers hang under this one (log.get_task_logger); the root's handler formats
    # their records with worker_task_log_format, so it needs no handler of its own.
    signals.after_setup_task_logger.send(
        sender=None, logger=logging.getLogger(TASK_LOGGER_NAME), loglevel=level,
        logfile=logfile, format=conf.worker_task_log_format, colorize=colorize,
    )  # fmt: skip
    return False


def node_format(template: str, nodename: str) -> str:
    """Expand a ``--logfile``/``--pidfile`` template for the node ``name@host``, as Celery
    does: ``%p`` the node name, ``%n`` its name part, ``%h`` the host, ``%d`` the host's
    domain, ``%i`` 0 and ``%I`` empty (the worker's own process; its pool children log
    through it), ``%%`` a percent sign."""
    name, _, host = nodename.rpartition("@")
    host = host or socket.gethostname()
    values = {"p": nodename, "n": name or host.partition(".")[0], "h": host,
              "d": host.partition(".")[2], "i": "0", "I": "", "%": "%"}  # fmt: skip
    return re.sub(r"%(.)", lambda match: values.get(match[1], match[0]), template)


__all__ = [
    "LEVELS",
    "LEVEL_COLORS",
    "WorkerFormatter",
    "already_setup",
    "make_handler",
    "mark_setup",
    "node_format",
    "resolve_level",
    "setup_logging",
    "supports_color",
]
