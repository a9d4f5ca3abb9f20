"""Task bodies crossing between celeriac and Celery: the two JSON dialects, and the
built-in task names.

Both sides write a value JSON cannot hold as ``{"__type__": kind, "__value__": ...}``,
and agree on ``datetime``, ``date``, ``time`` and ``decimal``. They differ on two kinds:

- a UUID: kombu writes ``{"hex": "1234..."}`` as the value, celeriac the UUID's text;
- bytes: kombu writes ``"bytes"`` with the bytes as UTF-8 text, or ``"base64"`` when they
  are not UTF-8; celeriac writes ``"bytes"`` with base64 text always.

So a ``"bytes"`` value means one thing to each side, and each body is rewritten on its
way across. Canvas built-ins are named ``celery.*`` by Celery and ``celeriac.*`` here
(``BUILTINS``); the names are swapped in the ``task`` header and in every signature the
body's embed carries.

A body is read only when it may need a change (it holds a marker or a built-in's name);
one that cannot be read (not JSON, an optional package missing, a compression method not
installed) goes across as it is, and whoever runs the task reports the problem with the
task's id at hand.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import DecodeError, MessageTooLarge
from celeriac.messages import compression as compressions
from celeriac.messages.serializers import registry

JSON = "application/json"
MSGPACK = "application/x-msgpack"

#: Celery's built-in canvas tasks and signature names -> celeriac's.
BUILTINS: dict[str, str] = {
    f"celery.{name}": f"celeriac.{name}"
    for name in ("chain", "group", "chord", "chunks", "map", "starmap", "accumulate")
}
TO_CELERY: dict[str, str] = {ours: theirs for theirs, ours in BUILTINS.items()}

Names = dict[str, str]
Markers = Callable[[dict[str, Any]], Any]

# Signature fields that hold other signatures: options, and a workflow's kwargs.
_SIGNATURE_OPTIONS = ("link", "link_error", "chain", "chord")
_SIGNATURE_KWARGS = ("tasks", "header", "body", "task")
_EMBED = ("callbacks", "errbacks", "chain", "chord")


def rename(name: Any, names: Names) -> Any:
    return names.get(name, name) if isinstance(name, str) else name


# -- markers --------------------------------------------------------------------------------------
def _marker(node: dict[str, Any]) -> str | None:
    kind = node.get("__type__")
    if isinstance(kind, str) and len(node) == 2 and "__value__" in node:
        return kind
    return None


def kombu_marker(node: dict[str, Any]) -> dict[str, Any]:
    """One of celeriac's markers as kombu writes it (any other node as it is)."""
    kind, value = _marker(node), node.get("__value__")
    if kind == "uuid" and isinstance(value, str):
        try:
            return {"__type__": "uuid", "__value__": {"hex": uuid.UUID(value).hex}}
        except ValueError:
            return node
    if kind == "bytes" and isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return node
        try:
            return {"__type__": "bytes", "__value__": data.decode("utf-8")}
        except UnicodeDecodeError:
            return {"__type__": "base64", "__value__": base64.b64encode(data).decode("ascii")}
    return node


def celeriac_marker(node: dict[str, Any]) -> dict[str, Any]:
    """One of kombu's markers as celeriac writes it (any other node as it is)."""
    kind, value = _marker(node), node.get("__value__")
    if kind == "uuid" and isinstance(value, dict) and isinstance(value.get("hex"), str):
        try:
            return {"__type__": "uuid", "__value__": str(uuid.UUID(hex=value["hex"]))}
        except ValueError:
            return node
    if kind == "bytes" and isinstance(value, str):
        try:
            data = value.encode("utf-8")
        except UnicodeEncodeError:  # an unpaired surrogate: not text kombu wrote
            return node
        return {"__type__": "bytes", "__value__": base64.b64encode(data).decode("ascii")}
    if kind == "base64" and isinstance(value, str):
        return {"__type__": "bytes", "__value__": value}
    return node


class _Changes:
    """Counts the changes a rewrite made: with none, the original bytes go on."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


def convert_markers(node: Any, convert: Markers, changes: _Changes | None = None) -> Any:
    """``node`` with every marker converted (other values kept, in place)."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            node[index] = convert_markers(item, convert, changes)
        return node
    if isinstance(node, dict):
        if _marker(node) is not None:
            converted = convert(node)
            if changes is not None and converted is not node:
                changes.count += 1
            return converted
        for key, item in node.items():
            node[key] = convert_markers(item, convert, changes)
    return node


# -- signatures -----------------------------------------------------------------------------------
def _signatures(value: Any, names: Names, changes: _Changes) -> None:
    """Rename the built-ins in one signature or a list of them, and all they hold."""
    if isinstance(value, list):
        for item in value:
            _signatures(item, names, changes)
        return
    if not isinstance(value, dict) or not isinstance(value.get("task"), str):
        return
    if value["task"] in names:
        value["task"] = names[value["task"]]
        changes.count += 1
    options = value.get("options")
    if isinstance(options, dict):
        for key in _SIGNATURE_OPTIONS:
            _signatures(options.get(key), names, changes)
    kwargs = value.get("kwargs")
    if isinstance(kwargs, dict):
        for key in _SIGNATURE_KWARGS:
            _signatures(kwargs.get(key), names, changes)


def rename_embed(body: Any, names: Names, changes: _Changes | None = None) -> None:
    """Rename the built-ins in a ``[args, kwargs, embed]`` body's signatures, in place."""
    if isinstance(body, list) and len(body) == 3 and isinstance(body[2], dict):
        for key in _EMBED:
            _signatures(body[2].get(key), names, _Changes() if changes is None else changes)


# -- whole bodies ---------------------------------------------------------------------------------
def _json_dumps_kombu(value: Any) -> bytes:
    # kombu's own layout (json.dumps' defaults), so a body Celery wrote comes back as it was.
    return json.dumps(value).encode("utf-8")


def _json_dumps_celeriac(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


@dataclass(frozen=True)
class _Direction:
    names: Names  # the built-ins to rename
    prefix: bytes  # what their names start with
    convert: Markers
    dumps: Callable[[Any], bytes]


def _rewrite(data: bytes, content_type: str, way: _Direction) -> bytes | None:
    """``data`` rewritten, or None when it needs no change or cannot be read."""
    # Only a marker or a built-in's name needs a change; neither is ever written escaped.
    if way.prefix not in data and (content_type != JSON or b"__type__" not in data):
        return None
    names, convert, dumps = way.names, way.convert, way.dumps
    changes = _Changes()
    try:
        if content_type == JSON:
            tree = convert_markers(json.loads(data.decode("utf-8")), convert, changes)
            rename_embed(tree, names, changes)
            return dumps(tree) if changes.count else None
        if content_type == MSGPACK:
            msgpack = registry["msgpack"]
            tree = msgpack.loads(data)
            rename_embed(tree, names, changes)
            return msgpack.dumps(tree) if changes.count else None
    except Exception:
        # Not readable here (bad JSON or msgpack, whose library raises its own error types;
        # msgpack not installed; too deep): sent as it is, and the task's reader reports it.
        return None
    return None


_TO_CELERY = _Direction(TO_CELERY, b"celeriac.", kombu_marker, _json_dumps_kombu)
_FROM_CELERY = _Direction(BUILTINS, b"celery.", celeriac_marker, _json_dumps_celeriac)


def convert_body(
    body: bytes,
    content_type: str,
    compression: Any,
    *,
    to_celery: bool,
    max_size: int | None = None,
) -> bytes:
    """``body`` as the other side reads it: markers in its JSON dialect, built-ins under
    its names. A compressed body is decompressed to look, and compressed again with the
    same method when it changed. ``MessageTooLarge`` when a compressed body would pass
    ``max_size`` bytes."""
    way = _TO_CELERY if to_celery else _FROM_CELERY
    data = body
    if compression is not None:
        if not isinstance(compression, str):
            return body  # the reader refuses it, naming the header
        try:
            data = compressions.decompress(body, compression, max_size)
        except MessageTooLarge:
            raise
        except DecodeError:
            return body  # a method not installed here, or bad data: the reader reports it
    rewritten = _rewrite(data, content_type, way)
    if rewritten is None:
        return body
    if compression is not None:
        rewritten, _ = compressions.compress(rewritten, compression)
    return rewritten
