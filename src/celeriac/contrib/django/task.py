"""``DjangoTask``: the default task class of a Django project's app, with calls that are
sent once the database transaction commits.

Edge layer: imports Django's ``transaction`` and ``celeriac.task``. Unlike Celery's,
``delay_on_commit`` returns the ``AsyncResult`` at once: its id is chosen before the
commit, so the caller can store it with the rows the task will read.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Any, ParamSpec, TypeVar

from django.db import DEFAULT_DB_ALIAS, transaction

from celeriac.result import AsyncResult
from celeriac.task import Task, new_id

P = ParamSpec("P")
R = TypeVar("R")


class DjangoTask(Task[P, R]):
    """A task with ``delay_on_commit`` and ``apply_async_on_commit`` (Celery 5.4's)."""

    def delay_on_commit(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        """``delay`` once the transaction of the default database commits (at once
        outside a transaction); nothing is sent if it rolls back."""
        return self.apply_async_on_commit(args, kwargs)

    def apply_async_on_commit(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        using: str | None = None,
        task_id: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        """``apply_async`` once the transaction on database ``using`` (default: the
        default database) commits; nothing is sent if it rolls back. The result's id is
        the id the message will carry."""
        task_id = task_id or new_id()
        self.check_call(tuple(args or ()), dict(kwargs or {}), options)  # fail now, not later
        send = functools.partial(self.apply_async, args, kwargs, task_id=task_id, **options)
        transaction.on_commit(send, using=using or DEFAULT_DB_ALIAS)
        return self.AsyncResult(task_id)


__all__ = ["DjangoTask"]
