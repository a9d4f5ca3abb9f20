"""Result handles: ``AsyncResult`` (read from the result backend) and ``EagerResult``.

App core: imports leaves and ``results.base``; reaches the backend through the app
object it is given. ``get()`` waits push-based and refuses to run inside a task.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from celeriac import states
from celeriac._context import get_current_app, get_current_request
from celeriac.exceptions import SyncSubtaskError
from celeriac.results.base import ResultBackend, TaskMeta

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

R = TypeVar("R")

_GET_IN_TASK = (
    "Never call result.get() within a task: the task holds a worker slot while it waits "
    "for another task that may need that slot, which can deadlock the workers. Link the "
    "next step instead (task1.apply_async(link=task2.s())), or if you are sure, call "
    "result.get(disable_sync_subtasks=False)."
)


def assert_will_not_block() -> None:
    request = get_current_request()
    if request is not None and not request.is_eager:
        raise SyncSubtaskError(_GET_IN_TASK)


class AsyncResult(Generic[R]):
    """The state and outcome of a task sent to a worker."""

    def __init__(
        self,
        id: str,
        backend: ResultBackend | None = None,
        task_name: str | None = None,
        app: Celeriac | None = None,
        parent: AsyncResult[Any] | None = None,
    ) -> None:
        self.id = id
        self.app: Celeriac = app if app is not None else get_current_app()
        self._backend = backend
        self.name = task_name
        self.parent = parent
        self._cache: TaskMeta | None = None

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> ResultBackend:
        return self._backend if self._backend is not None else self.app.backend

    def _meta(self) -> TaskMeta:
        if self._cache is not None:
            return self._cache
        meta = self.backend.get_task_meta(self.id)
        if meta["status"] in states.READY_STATES:
            self._cache = meta  # a ready result never changes again
        return meta

    @property
    def state(self) -> str:
        return str(self._meta()["status"])

    status = state

    @property
    def result(self) -> Any:
        """The return value, or the exception for a failed task."""
        return self._meta()["result"]

    info = result

    @property
    def traceback(self) -> str | None:
        return self._meta().get("traceback")

    @property
    def date_done(self) -> dt.datetime | None:
        value = self._meta().get("date_done")
        return dt.datetime.fromisoformat(value) if isinstance(value, str) else None

    def ready(self) -> bool:
        return self.state in states.READY_STATES

    def successful(self) -> bool:
        return self.state == states.SUCCESS

    def failed(self) -> bool:
        return self.state == states.FAILURE

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **_ignored: Any,
    ) -> R:
        """Wait for the result (no polling: ``interval`` is accepted and unused)."""
        if disable_sync_subtasks:
            assert_will_not_block()
        if self._cache is None:
            meta = self.backend.wait_for(self.id, timeout)
            self._cache = meta
        return self._outcome(propagate)

    wait = get

    def _outcome(self, propagate: bool) -> R:
        meta = self._meta()
        result = meta["result"]
        failed = meta["status"] in states.PROPAGATE_STATES
        if propagate and failed and isinstance(result, BaseException):
            raise result
        return cast(R, result)

    def forget(self) -> None:
        self._cache = None
        self.backend.forget(self.id)

    def revoke(
        self, connection: Any = None, terminate: bool = False, signal: str | int = "SIGTERM"
    ) -> None:
        """No worker starts this task from now on; ``terminate=True`` also stops it if it
        is running (``app.control.revoke``). ``connection`` is accepted for Celery's
        signature and unused: the app's broker carries the revoke."""
        self.app.control.revoke(self.id, terminate=terminate, signal=signal)

    def as_tuple(self) -> tuple[tuple[str, None], None]:
        return ((self.id, None), None)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AsyncResult):
            return other.id == self.id
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __str__(self) -> str:
        return self.id

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.id}>"


class EagerResult(AsyncResult[R]):
    """The outcome of a task run locally (``apply()`` or eager mode); already final."""

    def __init__(
        self,
        id: str,
        ret_value: Any,
        state: str,
        traceback: str | None = None,
        name: str | None = None,
        app: Celeriac | None = None,
    ) -> None:
        super().__init__(id, task_name=name, app=app)
        self._cache = {
            "task_id": id,
            "status": state,
            "result": ret_value,
            "traceback": traceback,
            "date_done": dt.datetime.now(dt.timezone.utc).isoformat(),
        }

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        **_ignored: Any,
    ) -> R:
        return self._outcome(propagate)

    wait = get

    def forget(self) -> None:
        """Nothing is stored for an eager result unless task_store_eager_result is set."""
        if self.app.conf.task_store_eager_result:
            self.app.backend.forget(self.id)
