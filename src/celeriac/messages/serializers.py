"""Serializers: json (default, with markers for dates, UUIDs, decimals, bytes), msgpack, pickle.

Pickle is registered but refused on decode unless ``accept_content`` names it:
unpickling runs code chosen by whoever wrote the message. ``auth`` is a name only here:
signed messages are written and read by the app's signer (``celeriac.security``).
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import ContentDisallowed, DecodeError, EncodeError


@dataclass(frozen=True, slots=True)
class Serializer:
    name: str
    content_type: str
    content_encoding: str
    dumps: Callable[[Any], bytes]
    loads: Callable[[bytes], Any]


def is_decimal(value: Any) -> bool:
    """Whether ``value`` is a ``decimal.Decimal``, without loading the decimal module (about
    0.7 MB) into a process that never made one: none can exist before it is loaded."""
    decimal = sys.modules.get("decimal")
    return decimal is not None and isinstance(value, decimal.Decimal)


def _decimal(text: str) -> Any:
    import decimal  # a message carried one: load it now

    return decimal.Decimal(text)


# --- json -------------------------------------------------------------------------------------
# A value JSON cannot hold is written as {"__type__": kind, "__value__": text} and read back.
def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"__type__": "datetime", "__value__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__type__": "date", "__value__": value.isoformat()}
    if isinstance(value, dt.time):
        return {"__type__": "time", "__value__": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {"__type__": "uuid", "__value__": str(value)}
    if is_decimal(value):
        return {"__type__": "decimal", "__value__": str(value)}
    if isinstance(value, (bytes, bytearray)):
        return {"__type__": "bytes", "__value__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_JSON_READERS: dict[str, Callable[[str], Any]] = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": _decimal,
    "bytes": base64.b64decode,
}


def _json_object_hook(obj: dict[str, Any]) -> Any:
    kind = obj.get("__type__")
    if kind is not None and len(obj) == 2 and "__value__" in obj:
        reader = _JSON_READERS.get(kind)
        if reader is not None:
            return reader(obj["__value__"])
    return obj


_json_encoder = json.JSONEncoder(
    default=_json_default, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)
_json_decoder = json.JSONDecoder(object_hook=_json_object_hook)


def _json_dumps(value: Any) -> bytes:
    return _json_encoder.encode(value).encode("utf-8")


def _json_loads(data: bytes) -> Any:
    return _json_decoder.decode(data.decode("utf-8"))


# --- msgpack (optional) -----------------------------------------------------------------------
def _msgpack_dumps(value: Any) -> bytes:
    import msgpack  # optional dependency: pip install celeriac[msgpack]

    return bytes(msgpack.packb(value, use_bin_type=True))


def _msgpack_loads(data: bytes) -> Any:
    import msgpack

    return msgpack.unpackb(data, raw=False)


# pickle is imported by the first message that uses it: most processes never do.
def _pickle_dumps(value: Any) -> bytes:
    import pickle

    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def _pickle_loads(data: bytes) -> Any:
    import pickle

    return pickle.loads(data)


#: The content type of a message signed by Celery's ``auth`` serializer.
AUTH_CONTENT_TYPE = "application/data"


def _auth_dumps(value: Any) -> bytes:
    raise EncodeError(
        "the 'auth' serializer signs task messages with the app's key: call "
        "app.setup_security() (with security_key, security_certificate and "
        "security_cert_store set) before sending; results and events are not signed, "
        "so keep result_serializer and event_serializer 'json' or 'msgpack'"
    )


def _auth_loads(data: bytes) -> Any:
    raise DecodeError(
        "this message is signed ('auth'), and this app cannot verify it: call "
        "app.setup_security() in the worker's app too"
    )


registry: dict[str, Serializer] = {
    s.name: s
    for s in (
        Serializer("json", "application/json", "utf-8", _json_dumps, _json_loads),
        Serializer("msgpack", "application/x-msgpack", "binary", _msgpack_dumps, _msgpack_loads),
        Serializer(
            "pickle", "application/x-python-serialize", "binary", _pickle_dumps, _pickle_loads
        ),
        Serializer("auth", AUTH_CONTENT_TYPE, "utf-8", _auth_dumps, _auth_loads),
    )
}
_by_content_type = {s.content_type: s for s in registry.values()}


def get_serializer(name: str) -> Serializer:
    try:
        return registry[name]
    except KeyError:
        known = ", ".join(sorted(registry))
        raise EncodeError(f"unknown serializer {name!r}; choose one of: {known}") from None


def resolve_accept(accept: Iterable[str]) -> frozenset[str]:
    """Turn ``accept_content`` (serializer names or content types) into content types."""
    return _resolve_accept(tuple(accept))


@functools.lru_cache(maxsize=64)
def _resolve_accept(accept: tuple[str, ...]) -> frozenset[str]:
    # Cached: the worker asks once per message, and the registry never changes.
    types = set()
    for item in accept:
        if item in registry:
            types.add(registry[item].content_type)
        elif item in _by_content_type:
            types.add(item)
        else:
            known = ", ".join(sorted(registry))
            raise ContentDisallowed(f"accept_content names unknown serializer {item!r} ({known})")
    return frozenset(types)


def dumps(value: Any, serializer: str) -> tuple[bytes, str, str]:
    """Serialize ``value``; return ``(data, content_type, content_encoding)``."""
    s = get_serializer(serializer)
    return s.dumps(value), s.content_type, s.content_encoding


def loads(data: bytes, content_type: str, accept: frozenset[str]) -> Any:
    """Deserialize ``data``, refusing content types not in ``accept`` (content types)."""
    if content_type not in accept:
        known = _by_content_type.get(content_type)
        named = f" (the {known.name} serializer)" if known is not None else ""
        raise ContentDisallowed(
            f"refusing to deserialize content of type {content_type!r}{named}: it is not in "
            f"accept_content ({', '.join(sorted(accept))}). Add it to accept_content only "
            f"if every producer that can write to this queue is trusted."
        )
    s = _by_content_type.get(content_type)
    if s is None:
        raise DecodeError(f"no serializer for content type {content_type!r}")
    try:
        return s.loads(data)
    except Exception as exc:
        raise DecodeError(f"cannot decode {s.name} payload: {exc}") from exc
