"""Task messages in Celery's protocol v2 shape: building them, reading their bodies back.

Headers: ``task id`` always; ``shadow eta expires group group_index retries timelimit
root_id parent_id argsrepr kwargsrepr origin ignore_result compression stamped_headers
stamps`` and ours (``idempotency_key sent_at``) only when they differ from their defaults
(none, 0, false; ``root_id`` the task's own id). Body: ``[args, kwargs, embed]``, the embed holding
whichever of ``callbacks errbacks chain chord`` the call has.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from celeriac.exceptions import DecodeError, EncodeError
from celeriac.messages import compression as compressions
from celeriac.messages.envelope import Message
from celeriac.messages.saferepr import saferepr
from celeriac.messages.serializers import dumps, loads
from celeriac.messages.validation import check_body

_REPR_LIMIT = 1024  # Celery's bound on argsrepr and kwargsrepr, in characters


class TaskBody(NamedTuple):
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    embed: dict[str, Any]


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _repr(value: Sequence[Any] | Mapping[str, Any], maxlevels: int) -> str | None:
    """None for no arguments: the reader fills in ``()`` and ``{}``."""
    return saferepr(value, _REPR_LIMIT, maxlevels) if value else None


def explain_unserializable(
    task_name: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    serializer: str,
    arg_names: Sequence[str] = (),
) -> str | None:
    """Name the first argument that ``serializer`` cannot encode, with advice; None if none."""
    candidates: list[tuple[str, Any]] = []
    for position, value in enumerate(args):
        name = arg_names[position] if position < len(arg_names) else None
        label = f"argument {name!r} (position {position})" if name else f"positional {position}"
        candidates.append((label, value))
    candidates.extend((f"keyword argument {key!r}", value) for key, value in kwargs.items())
    for label, value in candidates:
        try:
            dumps(value, serializer)
        except Exception as exc:
            return (
                f"task {task_name!r}: {label} is a {type(value).__module__}."
                f"{type(value).__qualname__}, which the {serializer!r} serializer cannot encode "
                f"({exc}). Pass plain data instead: for a database object pass its id "
                f"(e.g. {task_name.rsplit('.', 1)[-1]}.delay(obj.id)) and load it inside the task."
            )
    return None


def check_size(task_name: str, what: str, size: int, max_size: int | None) -> None:
    """``EncodeError`` naming the setting when the message's ``what`` is over the limit."""
    if max_size is not None and size > max_size:
        raise EncodeError(
            f"task {task_name!r}: the message {what} is {size} bytes, over the limit of "
            f"{max_size} bytes (setting task_message_max_size). Store large data elsewhere "
            f"(a database, object storage) and pass its key; or raise the limit."
        )


def task_message(
    *,
    task_name: str,
    task_id: str,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    serializer: str = "json",
    max_size: int | None = None,
    arg_names: Sequence[str] = (),
    eta: dt.datetime | None = None,
    expires: dt.datetime | None = None,
    retries: int = 0,
    root_id: str | None = None,
    parent_id: str | None = None,
    group_id: str | None = None,
    group_index: int | None = None,
    time_limit: float | None = None,
    soft_time_limit: float | None = None,
    ignore_result: bool = False,
    callbacks: list[dict[str, Any]] | None = None,
    errbacks: list[dict[str, Any]] | None = None,
    chain: list[dict[str, Any]] | None = None,
    chord: dict[str, Any] | None = None,
    shadow: str | None = None,
    origin: str | None = None,
    priority: int | None = None,
    reply_to: str | None = None,
    extra_headers: Mapping[str, Any] | None = None,
    idempotency_key: str | None = None,
    compression: str | None = None,
    stamped_headers: Sequence[str] | None = None,
    stamps: Mapping[str, Any] | None = None,
    sent_at: float | None = None,
    argsrepr: str | None = None,
    kwargsrepr: str | None = None,
    repr_maxlevels: int = 3,
) -> Message:
    """Build the message for one task call; raise ``EncodeError`` naming a bad argument."""
    kwargs = dict(kwargs or {})
    args = tuple(args)
    embed = {
        key: value
        for key, value in (
            ("callbacks", callbacks), ("errbacks", errbacks), ("chain", chain), ("chord", chord)
        )
        if value is not None
    }  # fmt: skip
    try:
        body, content_type, content_encoding = dumps([args, kwargs, embed], serializer)
    except EncodeError:
        raise
    except Exception as exc:
        reason = explain_unserializable(task_name, args, kwargs, serializer, arg_names)
        raise EncodeError(reason or f"task {task_name!r}: cannot serialize call: {exc}") from exc
    # Checked before compression: a worker holds the body decompressed, and refuses one
    # over its limit (``decode_task_body``).
    check_size(task_name, "body", len(body), max_size)
    compressed_as = None
    if compression:
        body, compressed_as = compressions.compress(body, compression)
    # Only what differs from the default is written: a queued message stays small, and a
    # reader fills in the rest (``Request.from_message``).
    optional = {
        "shadow": shadow,
        "eta": _iso(eta),
        "expires": _iso(expires),
        "group": group_id,
        "group_index": group_index,
        "retries": retries or None,
        "timelimit": [time_limit, soft_time_limit] if (time_limit or soft_time_limit) else None,
        "root_id": root_id if root_id not in (None, task_id) else None,
        "parent_id": parent_id,
        # Shown in events and the dashboard: the caller's text, else a bounded repr.
        "argsrepr": argsrepr if argsrepr is not None else _repr(args, repr_maxlevels),
        "kwargsrepr": kwargsrepr if kwargsrepr is not None else _repr(kwargs, repr_maxlevels),
        "origin": origin,
        "ignore_result": ignore_result or None,
        "idempotency_key": idempotency_key,
        # Celery's stamping headers: the stamps' names, and name -> value.
        "stamped_headers": list(stamped_headers) if stamped_headers else None,
        "stamps": dict(stamps or {}) if stamped_headers else None,
        "compression": compressed_as,
        # Ours: when the producer sent it (unix time), for the worker's queue-wait metric.
        "sent_at": sent_at,
    }
    headers: dict[str, Any] = {"task": task_name, "id": task_id}
    headers.update((key, value) for key, value in optional.items() if value is not None)
    if extra_headers:
        for key, value in extra_headers.items():
            headers.setdefault(key, value)
    properties: dict[str, Any] = {}  # correlation_id: the task id, unless given
    if priority is not None:
        properties["priority"] = priority
    if reply_to is not None:
        properties["reply_to"] = reply_to
    return Message(headers, body, content_type, content_encoding, properties)


def decode_task_body(
    message: Message, accept: frozenset[str], max_size: int | None = None
) -> TaskBody:
    """Read ``[args, kwargs, embed]`` from a message; raise ``DecodeError`` when it cannot
    be read, ``InvalidTaskError`` (a ``DecodeError``) naming a part of it that is invalid,
    ``MessageTooLarge`` (a ``DecodeError``) when it decompresses past ``max_size`` bytes."""
    body = message.body
    method = message.headers.get("compression")
    if method is not None:
        if not isinstance(method, str):
            raise DecodeError(
                f"header 'compression' must be a content type string, not a {type(method).__name__}"
            )
        body = compressions.decompress(body, method, max_size)
    args, kwargs, embed = check_body(loads(body, message.content_type, accept))
    return TaskBody(tuple(args), kwargs, embed)


#: The headers this protocol writes itself; any other header came from the caller.
PROTOCOL_HEADERS = frozenset({
    "task", "id", "shadow", "eta", "expires", "group", "group_index", "retries", "timelimit",
    "root_id", "parent_id", "argsrepr", "kwargsrepr", "origin", "ignore_result",
    "idempotency_key", "compression", "stamped_headers", "stamps", "sent_at", "signature",
})  # fmt: skip


def custom_headers(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's own headers (``apply_async(headers=...)``), without the protocol's."""
    return {key: value for key, value in headers.items() if key not in PROTOCOL_HEADERS}
