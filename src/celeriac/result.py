"""Result handles: ``AsyncResult`` (read from the result backend), ``EagerResult``, and
for groups ``ResultSet``/``GroupResult``.

App core: imports leaves and ``results.base``; reaches the backend through the app
object it is given. ``get()`` waits push-based and refuses to run inside a task.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Generic, NoReturn, TypeVar, cast

from celeriac import states
from celeriac._context import get_current_app, get_current_request, join_allowed
from celeriac._promise import Barrier, Promise
from celeriac.exceptions import SyncSubtaskError, TimeoutError
from celeriac.result_graph import Dependencies, result_from_tuple
from celeriac.result_joins import allow_join_result as allow_join_result  # Celery's path
from celeriac.result_joins import denied_join_result as denied_join_result
from celeriac.results.base import ResultBackend, TaskMeta
from celeriac.results.remote_traceback import remote_traceback

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
    if request is not None and not request.is_eager and not join_allowed.get():
        raise SyncSubtaskError(_GET_IN_TASK)


def _stored(field: str) -> Any:
    """A property reading ``field`` of the stored record (None when it was not stored)."""
    return property(lambda result: result._meta().get(field), doc=f"The stored {field}.")


class AsyncResult(Dependencies, Generic[R]):
    """The state and outcome of a task sent to a worker (``Dependencies``: the walk over
    the results it sent, ``collect()``, ``iterdeps()``, ``build_graph()``)."""

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
        self._name = task_name
        self.parent = parent
        self._cache: TaskMeta | None = None
        # Fired with this handle once it sees the task finished; then() chains onto it.
        self.on_ready = Promise()
        # Set by the producer when the call was sent with results ignored: no result will
        # ever be stored, so ``get()`` returns None at once instead of waiting it out.
        self.ignored = False

    @property
    def task_id(self) -> str:
        return self.id

    @property
    def backend(self) -> ResultBackend:
        return self._backend if self._backend is not None else self.app.backend

    TimeoutError = TimeoutError  # Celery's AsyncResult.TimeoutError
    supports_native_join = True  # every store wakes waiters itself: join is always native

    def _meta(self) -> TaskMeta:
        if self._cache is not None:
            return self._cache
        meta = self.backend.get_task_meta(self.id)
        if meta["status"] in states.READY_STATES:
            self._set_cache(meta)  # a ready result never changes again
        return meta

    def _set_cache(self, meta: TaskMeta) -> None:
        self._cache = meta
        if meta["status"] in states.READY_STATES:
            self.on_ready(self)  # once: later calls do nothing

    def then(
        self,
        callback: Callable[[AsyncResult[R]], Any],
        on_error: Callable[[BaseException], Any] | None = None,
        weak: bool = False,
    ) -> Promise:
        """``on_ready.then()``: ``callback(result)`` once this handle sees the task finished
        (at once if it has), in the thread calling ``get()``, ``ready()``, ``state``...
        ``weak`` is accepted for Celery's signature; the handle keeps its callbacks."""
        return self.on_ready.then(callback, on_error)

    def throw(self, exc: BaseException | None = None, tb: Any = None) -> NoReturn:
        """Raise ``exc`` (default: the task's error) through ``on_ready``: callbacks still
        waiting on it get it in their ``on_error``."""
        if exc is None:
            exc = cast(BaseException, self.result)
        self.on_ready.throw(exc, tb)
        raise exc.with_traceback(tb) if tb is not None else exc  # on_ready was cancelled

    def maybe_throw(
        self, propagate: bool = True, callback: Callable[..., Any] | None = None
    ) -> Any:
        """Raise the task's error if it failed (and ``propagate``), without waiting; else
        return its value (None while not ready). ``callback(task_id, value)`` first."""
        meta = self._meta()
        value = meta["result"]
        failed = meta["status"] in states.PROPAGATE_STATES
        if propagate and failed and isinstance(value, BaseException):
            self.throw(value, remote_traceback(meta, self.app.conf))
        if callback is not None:
            callback(self.id, value)
        return value

    maybe_reraise = maybe_throw

    def exists(self) -> bool:
        """Whether the store holds anything for this task: PENDING alone cannot tell a
        queued task from an id never sent, forgotten or expired."""
        return self.backend.task_result_exists(self.id)

    # -- the call's details (name always; the rest with result_extended) -------------------
    @property
    def name(self) -> str | None:
        """The task's name: as the caller knew it, else as stored with the result."""
        return self._name if self._name is not None else self._meta().get("name")

    @name.setter
    def name(self, value: str | None) -> None:
        self._name = value

    args = _stored("args")
    kwargs = _stored("kwargs")
    worker = _stored("worker")  # the hostname of the worker that ran it
    retries = _stored("retries")
    queue = _stored("queue")

    # -- the results it sent ---------------------------------------------------------------
    @property
    def children(self) -> list[Any] | None:
        """The results of the calls the task sent while it ran (None until it has stored
        a state); a group it sent is one ``GroupResult``."""
        children = self._meta().get("children")
        return None if children is None else [result_from_tuple(c, self.app) for c in children]

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
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        **_ignored: Any,
    ) -> R:
        """Wait for the result (no polling: ``interval`` is accepted and unused). A call
        sent with results ignored returns None at once: nothing will ever arrive. With
        ``follow_parents``, a failed parent task (an earlier chain step) raises first; a
        chord's header group is left to the chord's own ``ChordError``."""
        if disable_sync_subtasks:
            assert_will_not_block()
        if self.ignored:
            return cast(R, None)
        if follow_parents and propagate and self.parent is not None:
            for node in reversed(list(self._parents())):
                node.maybe_throw()
        if self._cache is None:
            self._set_cache(self.backend.wait_for(self.id, timeout))
        value = self._outcome(propagate)
        if callback is not None:
            callback(self.id, value)
        return value

    wait = get

    def _parents(self) -> Iterator[AsyncResult[Any]]:
        node = self.parent
        while isinstance(node, AsyncResult):
            yield node
            node = node.parent

    def _outcome(self, propagate: bool) -> R:
        meta = self._meta()
        result = meta["result"]
        failed = meta["status"] in states.PROPAGATE_STATES
        if propagate and failed and isinstance(result, BaseException):
            self.throw(result, remote_traceback(meta, self.app.conf))
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

    def revoke_by_stamped_headers(
        self, headers: Any, connection: Any = None, terminate: bool = False, signal: Any = None
    ) -> None:
        """Revoke every task stamped with one of ``headers`` (any task, not only this one):
        ``app.control.revoke_by_stamped_headers``. ``connection`` is unused."""
        control = self.app.control
        control.revoke_by_stamped_headers(headers, terminate=terminate, signal=signal or "SIGTERM")

    def as_tuple(self) -> tuple[tuple[str, Any], None]:
        """``((id, parent's as_tuple or None), None)``: ``result_from_tuple`` rebuilds it."""
        parent = self.parent
        return ((self.id, parent.as_tuple() if parent is not None else None), None)

    def as_list(self) -> list[str]:
        """This task's id, then its parents' (the chain's earlier steps), last first."""
        return [self.id, *(parent.id for parent in self._parents())]

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
        self._set_cache(
            {
                "task_id": id,
                "status": state,
                "result": ret_value,
                "traceback": traceback,
                "date_done": dt.datetime.now(dt.timezone.utc).isoformat(),
            }
        )

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        disable_sync_subtasks: bool = True,
        follow_parents: bool = True,
        callback: Callable[..., Any] | None = None,
        **_ignored: Any,
    ) -> R:
        value = self._outcome(propagate)
        if callback is not None:
            callback(self.id, value)
        return value

    wait = get

    def forget(self) -> None:
        """Nothing is stored for an eager result unless ``store_eager_result`` (the task's
        option, else the ``task_store_eager_result`` setting) stored it."""
        task = self.app.tasks.get(self._name) if self._name else None
        stored = task.resolve("store_eager_result") if task is not None else None
        if stored or (stored is None and self.app.conf.task_store_eager_result):
            self.app.backend.forget(self.id)


class ResultSet:
    """Several results, read together: ``get()`` returns their values in order."""

    parent: Any = None  # a GroupResult's is the result before it in a chain

    def __init__(self, results: Iterable[Any], app: Celeriac | None = None, **_ignored: Any):
        self.results: list[Any] = list(results)
        self._app = app
        self._watch_members()

    def _watch_members(self) -> None:
        """A fresh ``on_ready``, fired with this set once every member's has fired."""
        self.on_ready = Promise(args=(self,))
        self._barrier = Barrier(self.on_ready)
        for result in self.results:
            self._barrier.add(result.on_ready)
        self._barrier.finalize()

    @property
    def app(self) -> Celeriac:
        return self._app if self._app is not None else get_current_app()

    # -- membership -------------------------------------------------------------------------
    def add(self, result: Any) -> None:
        if result in self.results:
            return
        self.results.append(result)
        if self.on_ready.ready or self.on_ready.failed:
            self._watch_members()  # fired: then() from now on waits for the new member too
        else:
            self._barrier.add(result.on_ready)

    def remove(self, result: Any) -> None:
        target = self.app.AsyncResult(result) if isinstance(result, str) else result
        member = self.results.pop(self.results.index(target))
        self._barrier.discard(member.on_ready)

    def discard(self, result: Any) -> None:
        with contextlib.suppress(ValueError):
            self.remove(result)

    def update(self, results: Iterable[Any]) -> None:
        for result in results:
            self.add(result)

    def clear(self) -> None:
        self.results.clear()
        self._watch_members()

    def __iter__(self) -> Iterator[Any]:
        return iter(self.results)

    def __getitem__(self, index: int) -> Any:
        return self.results[index]

    def __len__(self) -> int:
        return len(self.results)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ResultSet):
            return other.results == self.results
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # -- state ------------------------------------------------------------------------------
    def _prime(self) -> None:
        """Read every not-yet-final member's record in one round trip (then most
        ``ready()``/``get()`` calls below cost nothing)."""
        pending = [r for r in self.results if type(r) is AsyncResult and r._cache is None]
        by_backend: dict[int, list[AsyncResult[Any]]] = {}
        for result in pending:
            by_backend.setdefault(id(result.backend), []).append(result)
        for group in by_backend.values():
            metas = group[0].backend.get_many_meta([r.id for r in group])
            for result, meta in zip(group, metas, strict=True):
                if meta["status"] in states.READY_STATES:
                    result._set_cache(meta)

    def ready(self) -> bool:
        """Every member has finished (successfully or not)."""
        self._prime()
        return all(result.ready() for result in self.results)

    def waiting(self) -> bool:
        return not self.ready()

    def successful(self) -> bool:
        self._prime()
        return all(result.successful() for result in self.results)

    def failed(self) -> bool:
        self._prime()
        return any(result.failed() for result in self.results)

    def completed_count(self) -> int:
        """How many members succeeded."""
        self._prime()
        return sum(int(result.successful()) for result in self.results)

    def forget(self) -> None:
        for result in self.results:
            result.forget()

    def revoke(
        self,
        connection: Any = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        wait: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Revoke every member (``app.control.revoke``); a nested group's members too."""
        ids = [r.id for r in _leaves(self.results)]
        if ids:
            self.app.control.revoke(ids, terminate=terminate, signal=signal)

    def get(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Any = None,
        disable_sync_subtasks: bool = True,
        **_ignored: Any,
    ) -> list[Any]:
        """Wait for every member; their values in member order. The first failure (in
        member order) is raised when ``propagate``; ``timeout`` bounds the whole wait."""
        return self.join(timeout, propagate, interval, callback, disable_sync_subtasks)

    def join(
        self,
        timeout: float | None = None,
        propagate: bool = True,
        interval: float = 0.5,
        callback: Any = None,
        disable_sync_subtasks: bool = True,
        **_ignored: Any,
    ) -> list[Any]:
        if disable_sync_subtasks:
            assert_will_not_block()
        self._prime()
        deadline = None if timeout is None else time.monotonic() + timeout
        values = []
        for result in self.results:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = result.get(timeout=remaining, propagate=propagate, disable_sync_subtasks=False)
            if callback is not None:
                callback(result.id, value)
            else:
                values.append(value)
        return values

    join_native = join
    supports_native_join = True

    def iter_native(
        self, timeout: float | None = None, interval: float = 0.5, **_ignored: Any
    ) -> Iterator[tuple[str, TaskMeta]]:
        """``(task_id, meta)`` for each member, in member order, each waited for (push:
        ``interval`` is unused); ``timeout`` bounds the whole wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for result in _leaves(self.results):
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if result._cache is None:
                result._set_cache(result.backend.wait_for(result.id, remaining))
            yield result.id, result._meta()

    def maybe_throw(
        self, callback: Callable[..., Any] | None = None, propagate: bool = True
    ) -> None:
        """Each member's ``maybe_throw``: the first failed one (in order) raises."""
        for result in self.results:
            result.maybe_throw(callback=callback, propagate=propagate)

    maybe_reraise = maybe_throw

    def then(
        self,
        callback: Callable[[ResultSet], Any],
        on_error: Callable[[BaseException], Any] | None = None,
        weak: bool = False,
    ) -> Promise:
        """``on_ready.then()``: ``callback(result_set)`` once every member has been seen
        finished (as ``AsyncResult.then``)."""
        return self.on_ready.then(callback, on_error)

    @property
    def backend(self) -> ResultBackend:
        return self.app.backend

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: [{', '.join(str(r.id) for r in self.results)}]>"


class GroupResult(ResultSet):
    """The result of a group: its id and its members' results, savable by id."""

    def __init__(
        self,
        id: str | None = None,
        results: Iterable[Any] | None = None,
        parent: Any = None,
        app: Celeriac | None = None,
        **_ignored: Any,
    ) -> None:
        super().__init__(results or (), app=app)
        self.id = id
        self.parent = parent

    @property
    def children(self) -> list[Any]:
        return self.results

    def save(self, backend: ResultBackend | None = None) -> GroupResult:
        """Store the member ids, so ``GroupResult.restore(id)`` finds them later."""
        (backend or self.app.backend).save_group(str(self.id), _saved_form(self.results))
        return self

    def delete(self, backend: ResultBackend | None = None) -> None:
        (backend or self.app.backend).delete_group(str(self.id))

    @classmethod
    def restore(
        cls, id: str, backend: ResultBackend | None = None, app: Celeriac | None = None
    ) -> GroupResult | None:
        """The group saved under ``id`` (``None`` if it was never saved, or expired)."""
        app = app if app is not None else get_current_app()
        saved = (backend or app.backend).restore_group(id)
        return None if saved is None else _from_saved_form(id, saved, app)

    def as_tuple(self) -> tuple[tuple[str | None, Any], list[Any]]:
        parent = self.parent.as_tuple() if self.parent is not None else None
        return ((self.id, parent), [r.as_tuple() for r in self.results])

    def __eq__(self, other: object) -> bool:
        if isinstance(other, GroupResult):
            return other.id == self.id and other.results == self.results
        if isinstance(other, str):
            return other == self.id
        return NotImplemented

    def __hash__(self) -> int:  # type: ignore[override]  # ResultSet's is None, as in Celery
        return hash(self.id)

    def __repr__(self) -> str:
        members = ", ".join(str(r.id) for r in self.results)
        return f"<GroupResult: {self.id} [{members}]>"


def _leaves(results: Iterable[Any]) -> Iterator[Any]:
    for result in results:
        if isinstance(result, ResultSet):
            yield from _leaves(result.results)
        else:
            yield result


def _saved_form(results: Iterable[Any]) -> list[Any]:
    return [[r.id, _saved_form(r.results)] if isinstance(r, GroupResult) else r.id for r in results]


def _from_saved_form(group_id: str, saved: list[Any], app: Celeriac) -> GroupResult:
    results = [
        app.AsyncResult(item) if isinstance(item, str) else _from_saved_form(item[0], item[1], app)
        for item in saved
    ]
    return GroupResult(group_id, results, app=app)
