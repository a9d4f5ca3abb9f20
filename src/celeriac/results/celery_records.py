"""``CeleryRecords``: result records as Celery 5's key-value stores keep them, for the
``wire_format = "celery"`` setting, so that ``celery.result.AsyncResult(id).get()`` reads
what a celeriac worker stored and celeriac reads what a Celery worker stored.

- Keys: ``celery-task-meta-<id>`` and ``celery-taskset-meta-<group id>``, after Celery's
  ``global_keyprefix`` transport option (with ``_`` added unless it ends in ``:_-.``).
  A chord's join is celeriac's own (``celeriac-chord-<group id>``): Celery's Redis store
  keeps its chord counters under other names, which neither side touches.
- A record is the serialized meta alone (the store's ``result_serializer`` says how to
  read it, as in Celery): ``status``, ``result``, ``traceback``, ``children``,
  ``date_done``, ``task_id``, with ``group_id``/``parent_id`` and, under
  ``result_extended``, ``name``, ``args``, ``kwargs``, ``worker``, ``retries``, ``queue``.
  JSON is written in kombu's dialect (a UUID as ``{"hex": ...}``, bytes as text), and an
  exception from ``celeriac.exceptions`` is named as ``celery.exceptions``'; read back,
  Celery's (and billiard's) exceptions that celeriac also has become celeriac's own.
- A saved group is ``{"result": GroupResult.as_tuple()}``.
- In a key-value store each record is a plain value under its key, and every write is
  published on a channel of the key's name with the record (``plain_values``).

Imports ``results.base``, ``messages`` and leaves.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from celeriac import exceptions as celeriac_exceptions
from celeriac.exceptions import DecodeError
from celeriac.messages.celery.body import celeriac_marker, convert_markers, kombu_marker
from celeriac.messages.serializers import dumps, get_serializer, loads
from celeriac.results.base import RecordFormat, TaskMeta

JSON = "application/json"
_OURS = "celeriac.exceptions"
_THEIRS = ("celery.exceptions", "billiard.exceptions")


def _exception_names(meta: Any, to_celery: bool) -> None:
    """Rename the module of a stored exception between the two sides, in place."""
    result = meta.get("result") if isinstance(meta, dict) else None
    if not isinstance(result, dict) or "exc_type" not in result:
        return
    module, name = result.get("exc_module"), result.get("exc_type")
    if to_celery and module == _OURS:
        result["exc_module"] = _THEIRS[0]
    elif (
        not to_celery
        and module in _THEIRS
        and isinstance(name, str)
        and isinstance(getattr(celeriac_exceptions, name, None), type)
    ):
        result["exc_module"] = _OURS


def _celery_member(member: Any) -> Any:
    """A group member (a task id, or ``[group_id, [...]]``) as ``as_tuple()`` writes it."""
    if isinstance(member, (list, tuple)) and len(member) == 2:
        group_id, members = member
        return [[group_id, None], [_celery_member(m) for m in members]]
    return [[member, None], None]


def _our_member(item: Any) -> Any:
    """A member of a Celery ``as_tuple()`` (``[[id, parent], children]``) as celeriac
    keeps it."""
    if isinstance(item, (list, tuple)) and len(item) == 2:
        head, children = item
        task_id = head[0] if isinstance(head, (list, tuple)) and head else head
        if isinstance(children, (list, tuple)):
            return [task_id, [_our_member(child) for child in children]]
        return task_id
    return item


class CeleryRecords(RecordFormat):
    """Celery's key names and record bytes (module docstring)."""

    name = "celery"
    plain_values: ClassVar[bool] = True
    prefix_option: ClassVar[str] = "global_keyprefix"
    default_prefix: ClassVar[str] = ""

    def task_key(self, task_id: str) -> str:
        return f"celery-task-meta-{task_id}"

    def group_key(self, group_id: str) -> str:
        return f"celery-taskset-meta-{group_id}"

    def chord_key(self, group_id: str) -> str:
        return f"celeriac-chord-{group_id}"

    def chord_added_key(self, group_id: str, task_id: str | None = None) -> str:
        base = f"celeriac-chord-{group_id}:added"
        return base if task_id is None else f"{base}:{task_id}"

    def stored_key(self, prefix: str, key: str) -> str:
        if prefix and prefix[-1] not in ":_-.":  # Celery's global_keyprefix rule
            prefix += "_"
        return f"{prefix}{key}"

    def channel(self, prefix: str, key: str) -> str:
        return self.stored_key(prefix, key)

    def encode(self, meta: TaskMeta, serializer: str) -> bytes:
        data, content_type, _ = dumps(meta, serializer)
        if content_type != JSON:
            return data
        tree = convert_markers(json.loads(data), kombu_marker)
        _exception_names(tree, to_celery=True)
        return json.dumps(tree).encode("utf-8")  # kombu's layout (json.dumps' defaults)

    def decode(self, raw: bytes, accept: frozenset[str], serializer: str = "json") -> TaskMeta:
        content_type = get_serializer(serializer).content_type
        if content_type == JSON:  # kombu's dialect first, then read as any JSON record
            try:
                tree = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise DecodeError(f"cannot decode json result record: {exc}") from None
            raw = json.dumps(convert_markers(tree, celeriac_marker)).encode("utf-8")
        meta: TaskMeta = loads(raw, content_type, accept)
        _exception_names(meta, to_celery=False)
        return meta

    def group_meta(self, group_id: str, members: list[Any]) -> TaskMeta:
        return {"result": [[group_id, None], [_celery_member(m) for m in members]]}

    def group_members(self, meta: TaskMeta) -> list[Any]:
        result = meta.get("result")
        if isinstance(result, (list, tuple)) and len(result) == 2:
            children = result[1]
            if isinstance(children, (list, tuple)):
                return [_our_member(child) for child in children]
        return list(meta.get("task_ids") or [])


CELERY_RECORDS = CeleryRecords()
