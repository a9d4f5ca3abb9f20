"""``app.log``: Celery's ``Logging`` part of the app, for programs and scripts of one's own.

App core. Built on the set-up the worker and beat use (``app.logsetup``): the same
``setup_logging`` contract (a receiver takes logging over), the same formats and colours,
the same stdout redirection (``app.redirect``). Logging is set up once per process:
``already_setup`` is shared by every app, as in Celery.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

from celeriac import signals
from celeriac.app.logsetup import (
    LEVEL_COLORS,
    already_setup,
    make_handler,
    mark_setup,
    node_format,
    resolve_level,
    setup_logging,
    supports_color,
)
from celeriac.app.redirect import REDIRECTED_LOGGER, LoggingProxy
from celeriac.app.term import colored
from celeriac.log import TASK_LOGGER_NAME
from celeriac.log import TaskFormatter as PlainTaskFormatter

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


class TaskFormatter(PlainTaskFormatter):
    """Celery's ``celery.app.log.TaskFormatter``: ``%(task_name)s``/``%(task_id)s`` on
    any record (``???`` outside a task), lines in the worker's level colours when
    ``use_color``. ``celeriac.utils.log.TaskFormatter`` is the same without colours."""

    def __init__(
        self, fmt: str | None = None, use_color: bool = True, datefmt: str | None = None
    ) -> None:
        super().__init__(fmt, datefmt)
        self.use_color = use_color

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        color = LEVEL_COLORS.get(record.levelname) if self.use_color else None
        return f"{color}{text}\033[0m" if color else text


class Logging:
    """``app.log``: ``setup()``, ``redirect_stdouts()``, ``setup_task_loggers()``, ..."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        conf = app.conf
        self.loglevel = logging.WARNING
        self.format: str = conf.worker_log_format
        self.datefmt: str | None = conf.worker_log_datefmt
        self.task_format: str = conf.worker_task_log_format
        self.task_datefmt: str | None = conf.worker_task_log_datefmt
        self.colorize: bool | None = conf.worker_log_color

    @property
    def already_setup(self) -> bool:
        """Whether this process's logging was set up (by any app, or the worker)."""
        return already_setup()

    @already_setup.setter
    def already_setup(self, done: bool) -> None:
        mark_setup(done)

    def setup(
        self,
        loglevel: str | int | None = None,
        logfile: str | None = None,
        redirect_stdouts: bool = False,
        redirect_level: str | int = "WARNING",
        colorize: bool | None = None,
        hostname: str | None = None,
    ) -> bool:
        """Set up logging as the worker does (once per process), then, unless a
        ``setup_logging`` receiver took over, send prints to the log if asked. True
        when a receiver took over. Python's warnings are logged from then on."""
        handled = self.setup_logging_subsystem(
            loglevel, logfile, colorize=colorize, hostname=hostname
        )
        if not handled and redirect_stdouts:
            self.redirect_stdouts(redirect_level)
        logging.captureWarnings(True)
        return bool(handled)

    def setup_logging_subsystem(
        self,
        loglevel: str | int | None = None,
        logfile: str | None = None,
        format: str | None = None,
        colorize: bool | None = None,
        hostname: str | None = None,
        datefmt: str | None = None,
    ) -> bool | None:
        """Configure the root logger (``worker_hijack_root_logger``, the formats and
        colours of the worker), sending ``setup_logging``, ``after_setup_logger`` and
        ``after_setup_task_logger``. None if logging was already set up in this process;
        else True when a ``setup_logging`` receiver took over. ``logfile`` may hold
        ``%n``/``%h``/... expanded for ``hostname``, as ``--logfile`` does."""
        if self.already_setup:
            return None
        if logfile and hostname:
            logfile = node_format(logfile, hostname)
        return setup_logging(
            self.loglevel if loglevel is None else loglevel,
            logfile,
            self.app,
            colorize=self.colorize if colorize is None else colorize,
            format=format or self.format,
            datefmt=self.datefmt if datefmt is None else datefmt,
        )

    def setup_task_loggers(
        self,
        loglevel: str | int | None = None,
        logfile: str | None = None,
        format: str | None = None,
        colorize: bool | None = None,
        propagate: bool = False,
        datefmt: str | None = None,
    ) -> logging.Logger:
        """Give the parent of the task loggers (``celeriac.task``) a handler of its own
        with ``worker_task_log_format`` (unless it has one), its level, and ``propagate``;
        send ``after_setup_task_logger``. The logger."""
        level = resolve_level(self.loglevel if loglevel is None else loglevel)
        format = format or self.task_format
        colorize = self.supports_color(colorize, logfile)
        logger = logging.getLogger(TASK_LOGGER_NAME)
        formatter = TaskFormatter(
            format, use_color=colorize, datefmt=self.task_datefmt if datefmt is None else datefmt
        )
        self.setup_handlers(logger, logfile, formatter)
        logger.setLevel(level)
        logger.propagate = propagate
        signals.after_setup_task_logger.send(
            sender=None, logger=logger, loglevel=level, logfile=logfile, format=format,
            colorize=colorize,
        )  # fmt: skip
        return logger

    def setup_handlers(
        self, logger: logging.Logger, logfile: str | None, formatter: logging.Formatter
    ) -> logging.Logger:
        """Add a handler for ``logfile`` (stderr if None) with ``formatter`` to
        ``logger``, unless it already has a handler that is not a ``NullHandler``."""
        if not any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            handler = make_handler(logfile)
            handler.setFormatter(formatter)
            logger.addHandler(handler)
        return logger

    def redirect_stdouts(
        self, loglevel: str | int | None = None, name: str = REDIRECTED_LOGGER
    ) -> LoggingProxy:
        """``print()`` and writes to ``sys.stderr`` become records of the logger
        ``name`` (``celeriac.redirected``) at ``loglevel`` (WARNING)."""
        return self.redirect_stdouts_to_logger(logging.getLogger(name), loglevel)

    def redirect_stdouts_to_logger(
        self,
        logger: logging.Logger,
        loglevel: str | int | None = None,
        stdout: bool = True,
        stderr: bool = True,
    ) -> LoggingProxy:
        """Replace ``sys.stdout`` and/or ``sys.stderr`` by a proxy logging each line on
        ``logger`` at ``loglevel`` (WARNING); the proxy. Keep ``sys.__stdout__`` to
        put them back."""
        proxy = LoggingProxy(logger, logging.WARNING if loglevel is None else loglevel)
        if stdout:
            sys.stdout = proxy
        if stderr:
            sys.stderr = proxy
        return proxy

    def supports_color(self, colorize: bool | None = None, logfile: str | None = None) -> bool:
        """Colour the lines? Never into a file, never when ``colorize`` (else
        ``worker_log_color``) is False; otherwise when stderr is a terminal."""
        return supports_color(self.colorize if colorize is None else colorize, logfile)

    def colored(self, logfile: str | None = None, enabled: bool | None = None) -> colored:
        """A ``colored`` builder, enabled per ``supports_color(enabled, logfile)``."""
        return colored(enabled=self.supports_color(enabled, logfile))

    def get_default_logger(self, name: str = "celeriac") -> logging.Logger:
        """The logger ``name`` (celeriac's own, by default)."""
        return logging.getLogger(name)


__all__ = ["Logging", "TaskFormatter"]
