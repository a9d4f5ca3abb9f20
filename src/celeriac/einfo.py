"""``ExceptionInfo``: an exception with its formatted traceback (Celery's ``einfo``).

A leaf: imports only the standard library.
"""

from __future__ import annotations

import traceback as tb_module


class ExceptionInfo:
    """An exception with its formatted traceback, as hooks and signals receive it."""

    def __init__(self, exc: BaseException) -> None:
        self.exception = exc
        self.type = type(exc)
        self.tb = exc.__traceback__
        self.traceback = "".join(tb_module.format_exception(type(exc), exc, exc.__traceback__))

    def __str__(self) -> str:
        return self.traceback
