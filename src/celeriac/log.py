"""Task logging: ``get_task_logger(__name__)`` records carry ``task_name`` and ``task_id``.

Imports only ``_context``. The ids come from the running request, so the user never
passes them; outside a task they read ``???`` as in Celery. Celery's old module-level
helpers (``get_default_logger``, ``setup_logging_subsystem``,
``redirect_stdouts_to_logger``) act on the current app's ``app.log``, as Celery's do.
"""

from __future__ import annotations

import logging
from typing import Any

from celeriac._context import get_current_app, get_current_request


class TaskContextFilter(logging.Filter):
    """Adds ``task_name`` and ``task_id`` of the running task to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = get_current_request()
        record.task_id = getattr(request, "id", None) or "???"
        record.task_name = getattr(request, "task", None) or "???"
        return True


_FILTER = TaskContextFilter()
#: The parent of every task logger whose own parent would be the root, as Celery's
#: ``celery.task``: the worker hands it to ``after_setup_task_logger`` receivers, so a
#: handler added there sees every task's records. It propagates to the root.
TASK_LOGGER_NAME = "celeriac.task"


def get_task_logger(name: str) -> logging.Logger:
    """A logger whose records name the running task: use ``%(task_name)s[%(task_id)s]``."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    if logger.parent is logging.root and name != TASK_LOGGER_NAME:
        logger.parent = logging.getLogger(TASK_LOGGER_NAME)
    return logger


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


class TaskFormatter(logging.Formatter):
    """A formatter that can use ``%(task_name)s`` and ``%(task_id)s`` on any record."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "task_id"):
            _FILTER.filter(record)
        return super().format(record)


def get_default_logger(*args: Any, **kwargs: Any) -> logging.Logger:
    """``current_app.log.get_default_logger(...)``."""
    logger: logging.Logger = get_current_app().log.get_default_logger(*args, **kwargs)
    return logger


def setup_logging_subsystem(*args: Any, **kwargs: Any) -> Any:
    """``current_app.log.setup_logging_subsystem(...)``."""
    return get_current_app().log.setup_logging_subsystem(*args, **kwargs)


def redirect_stdouts_to_logger(*args: Any, **kwargs: Any) -> Any:
    """``current_app.log.redirect_stdouts_to_logger(...)``."""
    return get_current_app().log.redirect_stdouts_to_logger(*args, **kwargs)


__all__ = [
    "TASK_LOGGER_NAME",
    "TaskContextFilter",
    "TaskFormatter",
    "get_default_logger",
    "get_logger",
    "get_task_logger",
    "redirect_stdouts_to_logger",
    "setup_logging_subsystem",
]
