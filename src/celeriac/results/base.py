"""The ``ResultBackend`` seam: task states and results, groups, and the chord counter.

Imports leaves and ``messages.serializers``. The base class does the bookkeeping once
(meta records, exceptions as data, serialization); an engine does only the I/O:
``_set``, ``_get``, ``_get_many``, ``_delete``, ``_wait``, ``_join`` and ``_grow``. Waiting is
push-based.
Key names and record bytes come from a ``RecordFormat`` (``record_format=``), ours unless given.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from types import EllipsisType
from typing import Any, ClassVar

from celeriac import states
from celeriac.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendGetMetaError,
    BackendStoreError,
    GetMetaConnectionLost,
    ImproperlyConfigured,
    StoreConnectionLost,
    TimeoutError,
)
from celeriac.messages.serializers import dumps, loads, resolve_accept
from celeriac.results.cache import ResultCache
from celeriac.results.compressed import compress_record, decompress_record
from celeriac.results.exceptions_codec import decode_exception, encode_exception
from celeriac.results.retry import NO_RETRY, StoreRetry

TaskMeta = dict[str, Any]


class RecordFormat:
    """What a result store calls its records and how a record becomes bytes.

    celeriac's own: keys ``task:<id>``, ``group:<id>``, ``chord:<id>`` (an engine may put
    them under a prefix), and a record is the serializer's content type, a newline, and
    the serialized meta. A subclass can frame records another way; the engines only store
    the keys and bytes it gives them.

    A key-value engine (Redis) also asks it how records lie in the store: ``plain_values``
    False (celeriac's), each under ``<prefix>:result:<key>`` with a ready flag beside it,
    a final state announced on ``<prefix>:ready:<key>``; True, each a plain value under
    ``stored_key``, every write announced on the channel ``channel`` names, carrying the
    record (Celery's key-value stores). ``prefix_option`` names the transport option that
    gives the prefix.
    """

    name = "celeriac"
    plain_values: ClassVar[bool] = False
    prefix_option: ClassVar[str] = "key_prefix"
    default_prefix: ClassVar[str] = "celeriac"

    def task_key(self, task_id: str) -> str:
        return f"task:{task_id}"

    def group_key(self, group_id: str) -> str:
        return f"group:{group_id}"

    def chord_key(self, group_id: str) -> str:
        return f"chord:{group_id}"

    def chord_added_key(self, group_id: str, task_id: str | None = None) -> str:
        """The tasks ``task_id`` added to chord ``group_id`` (``add_to_chord``); without
        ``task_id``, the mark that some were added."""
        base = f"chord:{group_id}:added"
        return base if task_id is None else f"{base}:{task_id}"

    def stored_key(self, prefix: str, key: str) -> str:
        """Where a key-value store keeps ``key``, under ``prefix``."""
        return f"{prefix}:result:{key}"

    def channel(self, prefix: str, key: str) -> str:
        """The channel a key-value store announces ``key``'s record on."""
        return f"{prefix}:ready:{key}"

    def encode(self, meta: TaskMeta, serializer: str) -> bytes:
        data, content_type, _ = dumps(meta, serializer)
        return content_type.encode() + b"\n" + data

    def decode(self, raw: bytes, accept: frozenset[str], serializer: str = "json") -> TaskMeta:
        """The meta in ``raw``; the content type must be in ``accept`` (``loads`` checks).
        ``serializer``: the store's, for a format whose records do not name theirs."""
        content_type, _, data = raw.partition(b"\n")
        meta: TaskMeta = loads(data, content_type.decode(), accept)
        return meta

    def group_meta(self, group_id: str, members: list[Any]) -> TaskMeta:
        """The record of a saved group: its members in order (task ids, or
        ``[group_id, [...]]`` pairs for nested groups)."""
        return {"task_ids": members}

    def group_members(self, meta: TaskMeta) -> list[Any]:
        """A saved group's members, from its record (``group_meta`` undone)."""
        return list(meta["task_ids"])


NATIVE_RECORDS = RecordFormat()
#: The URL schemes of the in-process store (``results.memory``), known without loading it.
MEMORY_SCHEMES = ("cache+memory", "memory")


def pending_meta(task_id: str) -> TaskMeta:
    return {
        "task_id": task_id,
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "date_done": None,
    }


@contextlib.contextmanager
def _reading(task_id: str) -> Iterator[None]:
    """A store error while reading ``task_id``'s state becomes Celery's
    ``BackendGetMetaError`` (also a ``BackendConnectionError`` when the store was lost)."""
    try:
        yield
    except BackendGetMetaError:
        raise
    except BackendError as exc:
        lost = isinstance(exc, BackendConnectionError)
        error = GetMetaConnectionLost if lost else BackendGetMetaError
        raise error(str(exc), task_id=task_id) from exc


@contextlib.contextmanager
def _storing(task_id: str, state: str) -> Iterator[None]:
    """A store error while storing ``task_id``'s ``state`` becomes Celery's
    ``BackendStoreError`` (also a ``BackendConnectionError`` when the store was lost)."""
    try:
        yield
    except BackendStoreError:
        raise
    except BackendError as exc:
        lost = isinstance(exc, BackendConnectionError)
        error = StoreConnectionLost if lost else BackendStoreError
        raise error(str(exc), state=state, task_id=task_id) from exc


class ResultBackend(ABC):
    """Stores what happened to each task, for ``AsyncResult`` to read."""

    schemes: tuple[str, ...] = ()
    #: Whether results are stored at all. False for ``DisabledBackend`` (no result_backend
    #: set): a chord, which reads its header's results, refuses to be sent without one.
    keeps_results: ClassVar[bool] = True
    #: Whether the engine keeps each record for its own time, so that failures can
    #: expire apart (``result_failure_expires``): Redis only, as in Celery.
    supports_failure_expires: ClassVar[bool] = False
    #: Whether a chord's join bookkeeping can expire apart (``result_chord_expires``).
    supports_chord_expires: ClassVar[bool] = False
    #: ``result_extended``: also store the call's name, args, kwargs, worker, retries and
    #: queue (read from the ``request`` given to ``store_result``). The app sets it.
    extended: bool = False
    #: ``result_backend_always_retry`` and its limits: which engine calls are repeated
    #: after a lost connection (those that may run twice safely). The app sets it.
    retry: StoreRetry = NO_RETRY
    #: ``result_compression``: the method new records are compressed with, or None.
    #: Compressed records are read whatever it says. The app sets it.
    compression: str | None = None
    #: ``result_cache_max``: successes (and saved groups) kept in this process once read,
    #: so they are not read from the store again. Off unless the app sets it.
    cache: ResultCache = ResultCache()
    #: ``result_failure_expires``: seconds a FAILURE record is kept (None: forever);
    #: ``...`` (unset), failures expire like the rest. The app sets it.
    failure_expires: float | EllipsisType | None = ...
    #: ``result_chord_expires``: seconds a chord's join bookkeeping is kept (None: forever);
    #: ``...`` (unset), ``expires``. The app sets it.
    chord_expires: float | EllipsisType | None = ...

    def __init__(
        self,
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        record_format: RecordFormat | None = None,
    ) -> None:
        if serializer == "auth":  # Celery's signing serializer: task messages only here
            raise ImproperlyConfigured(
                "result_serializer='auth': results are not signed (task messages are, see "
                "app.setup_security()); use 'json', 'msgpack' or 'pickle'"
            )
        self.expires = expires
        self.serializer = serializer
        self.accept = resolve_accept(accept_content)
        self.records = NATIVE_RECORDS if record_format is None else record_format

    # -- engine I/O -------------------------------------------------------------------------
    @abstractmethod
    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        """Store ``value``; ``ready`` wakes whoever waits on ``key`` (the task finished)."""

    @abstractmethod
    def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    def _delete(self, key: str) -> None: ...

    @abstractmethod
    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        """Block until ``key`` holds a ready record (or timeout); return it or None."""

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """``_get`` for several keys; engines override it to use one round trip."""
        return [self._get(key) for key in keys]

    @abstractmethod
    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        """Add ``member`` to the set at ``key``, atomically; True for the member whose
        arrival made the set reach ``size`` plus what ``_grow`` added (and for that member
        again, if it asks again)."""

    def _grow(self, key: str, by: int, ttl: float | None) -> None:
        """Raise the size the set at ``key`` must reach by ``by``, atomically with ``_join``
        (a join reads the size and adds its member in one step). An engine that cannot
        keeps this default, and ``add_to_chord`` says so."""
        raise NotImplementedError(
            f"the {type(self).__name__} result store cannot grow a chord, so "
            f"Task.add_to_chord() is not available with it; use the Redis or memory store"
        )

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, meta: TaskMeta) -> bytes:
        record = self.records.encode(meta, self.serializer)
        return compress_record(record, self.compression) if self.compression else record

    def record_ready(self, raw: bytes) -> bool:
        """Whether the record ``raw`` holds a final state (one that cannot be read counts
        as final: whoever reads it is told why)."""
        try:
            return self.decode(raw).get("status") in states.READY_STATES
        except Exception:
            return True

    def decode(self, raw: bytes) -> TaskMeta:
        meta = self.records.decode(decompress_record(raw), self.accept, self.serializer)
        if meta.get("status") in states.EXCEPTION_STATES and isinstance(meta.get("result"), dict):
            meta["result"] = decode_exception(meta["result"])
        return meta

    # -- tasks ------------------------------------------------------------------------------
    def store_result(
        self,
        task_id: str,
        result: Any,
        state: str,
        *,
        traceback: str | None = None,
        name: str | None = None,
        extra: dict[str, Any] | None = None,
        request: Any = None,
    ) -> None:
        """Record ``task_id``'s ``state``. ``request`` is the call's ``Request`` when a
        worker (or ``apply``) records it: stores that answer the caller directly (rpc://) or
        keep the call's details (``result_extended``) read it; others ignore it."""
        if isinstance(result, BaseException):
            result = encode_exception(result)
        meta: TaskMeta = {
            "task_id": task_id,
            "status": state,
            "result": result,
            "traceback": traceback,
            "date_done": dt.datetime.now(dt.timezone.utc).isoformat()
            if state in states.READY_STATES
            else None,
        }
        if request is not None:
            meta.update(self.request_meta(request))
        if name is not None:
            meta["name"] = name
        if extra:
            meta.update(extra)
        ready = state in states.READY_STATES
        key, record = self.records.task_key(task_id), self.encode(meta)
        ttl = self.expires
        if state == states.FAILURE and self.failure_expires is not ...:
            ttl = self.failure_expires
        with _storing(task_id, state):
            self.retry.call("store_result", self._set, key, record, ttl, ready=ready)

    def request_meta(self, request: Any) -> TaskMeta:
        """What a record keeps of the call: the results of the calls it sent (``children``,
        as ``as_tuple()`` forms), its group and parent, and with ``extended`` its details."""
        meta: TaskMeta = {
            "children": [child.as_tuple() for child in getattr(request, "children", None) or ()]
        }
        for field, attribute in (("group_id", "group"), ("parent_id", "parent_id")):
            value = getattr(request, attribute, None)
            if value:
                meta[field] = value
        if self.extended:
            delivery_info = getattr(request, "delivery_info", None) or {}
            meta.update(
                name=getattr(request, "task", None),
                args=list(getattr(request, "args", None) or ()),
                kwargs=dict(getattr(request, "kwargs", None) or {}),
                worker=getattr(request, "hostname", None),
                retries=getattr(request, "retries", None),
                queue=delivery_info.get("routing_key"),
            )
        return meta

    def mark_as_done(self, task_id: str, result: Any, name: str | None = None) -> None:
        self.store_result(task_id, result, states.SUCCESS, name=name)

    def mark_as_failure(
        self, task_id: str, exc: BaseException, traceback: str | None = None
    ) -> None:
        self.store_result(task_id, exc, states.FAILURE, traceback=traceback)

    def get_task_meta(self, task_id: str) -> TaskMeta:
        key = self.records.task_key(task_id)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        with _reading(task_id):
            raw = self.retry.call("get_task_meta", self._get, key)
        return self._keep(key, self.decode(raw)) if raw is not None else pending_meta(task_id)

    def _keep(self, key: str, meta: TaskMeta) -> TaskMeta:
        """Cache a success (final: a failure may be retried under the same id), as Celery."""
        if meta.get("status") == states.SUCCESS:
            self.cache.put(key, meta)
        return meta

    def task_result_exists(self, task_id: str) -> bool:
        """Whether anything is stored for the task (a PENDING state may mean unknown)."""
        key = self.records.task_key(task_id)
        return self.retry.call("task_result_exists", self._get, key) is not None

    def get_many_meta(self, task_ids: Sequence[str]) -> list[TaskMeta]:
        """The records of several tasks, in order, read together (PENDING if unknown)."""
        keys = [self.records.task_key(task_id) for task_id in task_ids]
        found = {key: meta for key in keys if (meta := self.cache.get(key)) is not None}
        missing = [key for key in keys if key not in found]
        raws = self.retry.call("get_many_meta", self._get_many, missing) if missing else []
        for key, raw in zip(missing, raws, strict=True):
            if raw is not None:
                found[key] = self._keep(key, self.decode(raw))
        return [
            found.get(key) or pending_meta(task_id)
            for task_id, key in zip(task_ids, keys, strict=True)
        ]

    def wait_for(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until the task is ready; raise ``TimeoutError`` after ``timeout`` seconds."""
        key = self.records.task_key(task_id)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        deadline = None if timeout is None else time.monotonic() + timeout

        def wait() -> bytes | None:  # a retry waits only for what is left of the timeout
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            return self._wait(key, left)

        with _reading(task_id):
            raw = self.retry.call("wait_for", wait)
        if raw is None:
            raise TimeoutError(
                f"task {task_id} was not ready within {timeout}s. Is a worker consuming "
                f"its queue, and was the call sent with a result backend configured?"
            )
        return self._keep(key, self.decode(raw))

    def forget(self, task_id: str) -> None:
        key = self.records.task_key(task_id)
        self.cache.discard(key)
        self.retry.call("forget", self._delete, key)

    # -- groups and chords ------------------------------------------------------------------
    def save_group(self, group_id: str, task_ids: Sequence[Any]) -> None:
        """Store a group's members in order: task ids, or ``[group_id, [...]]`` pairs for
        nested groups (the form ``GroupResult.as_tuple`` gives)."""
        record = self.encode(self.records.group_meta(group_id, list(task_ids)))
        key = self.records.group_key(group_id)
        self.retry.call("save_group", self._set, key, record, self.expires)

    def restore_group(self, group_id: str) -> list[Any] | None:
        key = self.records.group_key(group_id)
        record = self.cache.get(key)
        if record is None:
            raw = self.retry.call("restore_group", self._get, key)
            if raw is None:
                return None
            record = self.decode(raw)
            self.cache.put(key, record)  # a saved group never changes, as in Celery
        return self.records.group_members(record)

    def delete_group(self, group_id: str) -> None:
        key = self.records.group_key(group_id)
        self.cache.discard(key)
        self.retry.call("delete_group", self._delete, key)

    @property
    def chord_ttl(self) -> float | None:
        """Seconds the chord bookkeeping is kept: ``chord_expires``, unset ``expires``."""
        return self.expires if self.chord_expires is ... else self.chord_expires

    def chord_part_done(self, group_id: str, task_id: str, size: int) -> bool:
        """Record that header task ``task_id`` of the chord ``group_id`` (``size`` tasks)
        has ended. True for exactly one task: the one whose end completed the header; it
        must apply the body. A redelivered header task counts once; the completing task,
        redelivered after a crash, is told True again, so the body is never lost.
        """
        key = self.records.chord_key(group_id)  # a join repeated by a retry counts once
        return self.retry.call("chord_part_done", self._join, key, task_id, size, self.chord_ttl)

    def add_to_chord(self, group_id: str, task_id: str, *, added_by: str) -> None:
        """Make chord ``group_id`` wait for ``task_id`` too, added by header task ``added_by``
        (still running, so the chord cannot complete before this). The body gets the added
        result right after ``added_by``'s, in the order they were added."""
        ttl = self.chord_ttl
        self._grow(self.records.chord_key(group_id), 1, ttl)
        # Only the adding task writes its own record, so the read-append cannot race.
        key = self.records.chord_added_key(group_id, added_by)
        raw = self._get(key)
        added = [] if raw is None else list(self.decode(raw)["task_ids"])
        self._set(key, self.encode({"task_ids": [*added, task_id]}), ttl)
        self._set(self.records.chord_added_key(group_id), self.encode({"added": True}), ttl)

    def chord_members(self, group_id: str, header_ids: Sequence[str]) -> list[str]:
        """The header's task ids with the tasks added to the chord (``add_to_chord``) put
        right after the task that added them."""
        if self._get(self.records.chord_added_key(group_id)) is None:
            return list(header_ids)  # the common case: one read
        members: list[str] = []
        level = list(header_ids)
        added_to: dict[str, list[str]] = {}
        while level:  # one round trip per level of tasks adding tasks
            keys = [self.records.chord_added_key(group_id, task_id) for task_id in level]
            level_added = [
                [] if raw is None else list(self.decode(raw)["task_ids"])
                for raw in self._get_many(keys)
            ]
            added_to.update(zip(level, level_added, strict=True))
            level = [task_id for found in level_added for task_id in found]
            level = [task_id for task_id in level if task_id not in added_to]  # no cycles

        def visit(task_id: str) -> None:
            members.append(task_id)
            for added in added_to.pop(task_id, ()):  # popped: each id once
                visit(added)

        for task_id in header_ids:
            visit(task_id)
        return members

    def reply_address(self) -> str | None:
        """Where a call sent from this process asks the worker to send its states
        (``reply_to``), or None for a store that every process reads. rpc:// answers with
        this client's reply topic, listened to before the address is handed out."""
        return None

    def ensure_chords_allowed(self) -> None:
        """Raise, naming the fix, when this store cannot complete a chord."""
        return None

    def close(self) -> None:
        """Release connections."""
        return None


_NO_BACKEND = (
    "No result backend is configured, so task results are not stored and cannot be read. "
    "Set result_backend (e.g. Celery(..., backend='redis://localhost:6379/1') or "
    "'cache+memory://' in tests), or pass ignore_result=True and do not wait for results."
)


class DisabledBackend(ResultBackend):
    """What ``result_backend = None`` means: writes are dropped, reads explain the fix."""

    keeps_results = False

    def ensure_chords_allowed(self) -> None:
        raise ImproperlyConfigured(
            "a chord needs a result backend that its workers share: its body is sent "
            "by the header task that finishes last, after reading every header result. "
            "Set result_backend (e.g. 'redis://...'), or use a chain or group instead."
        )

    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        return None

    def _get(self, key: str) -> bytes | None:
        raise ImproperlyConfigured(_NO_BACKEND)

    def _delete(self, key: str) -> None:
        raise ImproperlyConfigured(_NO_BACKEND)

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        raise ImproperlyConfigured(_NO_BACKEND)

    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        raise ImproperlyConfigured(_NO_BACKEND)
