"""``celery.utils.log`` path: re-exports ``celeriac.log``."""

from celeriac.log import TaskFormatter, get_logger, get_task_logger

__all__ = ["TaskFormatter", "get_logger", "get_task_logger"]
