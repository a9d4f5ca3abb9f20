"""The ``ResultBackend`` seam: task states and results, groups, and the chord counter.

Imports leaves and ``messages.serializers``. The base class does the bookkeeping once
(meta records, exceptions as data, serialization); an engine does only the I/O:
``_set``, ``_get``, ``_get_many``, ``_delete``, ``_wait`` and ``_join``. Waiting is push-based.
Key names and record bytes come from a ``RecordFormat`` (``record_format=``), ours unless given.
"""

from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from celeriac import states
from celeriac.exceptions import ImproperlyConfigured, TimeoutError
from celeriac.messages.serializers import dumps, loads, resolve_accept
from celeriac.results.exceptions_codec import decode_exception, encode_exception

TaskMeta = dict[str, Any]


class RecordFormat:
    """What a result store calls its records and how a record becomes bytes.

    celeriac's own: keys ``task:<id>``, ``group:<id>``, ``chord:<id>`` (an engine may put
    them under a prefix), and a record is the serializer's content type, a newline, and
    the serialized meta. A subclass can frame records another way; the engines only store
    the keys and bytes it gives them.
    """

    name = "celeriac"

    def task_key(self, task_id: str) -> str:
        return f"task:{task_id}"

    def group_key(self, group_id: str) -> str:
        return f"group:{group_id}"

    def chord_key(self, group_id: str) -> str:
        return f"chord:{group_id}"

    def encode(self, meta: TaskMeta, serializer: str) -> bytes:
        data, content_type, _ = dumps(meta, serializer)
        return content_type.encode() + b"\n" + data

    def decode(self, raw: bytes, accept: frozenset[str]) -> TaskMeta:
        """The meta in ``raw``; the content type must be in ``accept`` (``loads`` checks)."""
        content_type, _, data = raw.partition(b"\n")
        meta: TaskMeta = loads(data, content_type.decode(), accept)
        return meta


NATIVE_RECORDS = RecordFormat()


def pending_meta(task_id: str) -> TaskMeta:
    return {
        "task_id": task_id,
        "status": states.PENDING,
        "result": None,
        "traceback": None,
        "date_done": None,
    }


class ResultBackend(ABC):
    """Stores what happened to each task, for ``AsyncResult`` to read."""

    schemes: tuple[str, ...] = ()
    #: Whether results are stored at all. False for ``DisabledBackend`` (no result_backend
    #: set): a chord, which reads its header's results, refuses to be sent without one.
    keeps_results: ClassVar[bool] = True

    def __init__(
        self,
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        record_format: RecordFormat | None = None,
    ) -> None:
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
        arrival made the set reach ``size`` (and for that member again, if it asks again)."""

    # -- encoding ---------------------------------------------------------------------------
    def encode(self, meta: TaskMeta) -> bytes:
        return self.records.encode(meta, self.serializer)

    def decode(self, raw: bytes) -> TaskMeta:
        meta = self.records.decode(raw, self.accept)
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
        if name is not None:
            meta["name"] = name
        if extra:
            meta.update(extra)
        ready = state in states.READY_STATES
        self._set(self.records.task_key(task_id), self.encode(meta), self.expires, ready=ready)

    def mark_as_done(self, task_id: str, result: Any, name: str | None = None) -> None:
        self.store_result(task_id, result, states.SUCCESS, name=name)

    def mark_as_failure(
        self, task_id: str, exc: BaseException, traceback: str | None = None
    ) -> None:
        self.store_result(task_id, exc, states.FAILURE, traceback=traceback)

    def get_task_meta(self, task_id: str) -> TaskMeta:
        raw = self._get(self.records.task_key(task_id))
        return self.decode(raw) if raw is not None else pending_meta(task_id)

    def get_many_meta(self, task_ids: Sequence[str]) -> list[TaskMeta]:
        """The records of several tasks, in order, read together (PENDING if unknown)."""
        raws = self._get_many([self.records.task_key(task_id) for task_id in task_ids])
        return [
            self.decode(raw) if raw is not None else pending_meta(task_id)
            for task_id, raw in zip(task_ids, raws, strict=True)
        ]

    def wait_for(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        """Block until the task is ready; raise ``TimeoutError`` after ``timeout`` seconds."""
        raw = self._wait(self.records.task_key(task_id), timeout)
        if raw is None:
            raise TimeoutError(
                f"task {task_id} was not ready within {timeout}s. Is a worker consuming "
                f"its queue, and was the call sent with a result backend configured?"
            )
        return self.decode(raw)

    def forget(self, task_id: str) -> None:
        self._delete(self.records.task_key(task_id))

    # -- groups and chords ------------------------------------------------------------------
    def save_group(self, group_id: str, task_ids: Sequence[Any]) -> None:
        """Store a group's members in order: task ids, or ``[group_id, [...]]`` pairs for
        nested groups (the form ``GroupResult.as_tuple`` gives)."""
        record = self.encode({"task_ids": list(task_ids)})
        self._set(self.records.group_key(group_id), record, self.expires)

    def restore_group(self, group_id: str) -> list[Any] | None:
        raw = self._get(self.records.group_key(group_id))
        return None if raw is None else list(self.decode(raw)["task_ids"])

    def delete_group(self, group_id: str) -> None:
        self._delete(self.records.group_key(group_id))

    def chord_part_done(self, group_id: str, task_id: str, size: int) -> bool:
        """Record that header task ``task_id`` of the chord ``group_id`` (``size`` tasks)
        has ended. True for exactly one task: the one whose end completed the header; it
        must apply the body. A redelivered header task counts once; the completing task,
        redelivered after a crash, is told True again, so the body is never lost.
        """
        return self._join(self.records.chord_key(group_id), task_id, size, self.expires)

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
