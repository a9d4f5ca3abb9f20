"""The ``Message`` envelope and its wire form.

A message is headers (Celery protocol v2 names plus ours), properties (priority,
correlation id, delivery info), a content type and an opaque serialized body.

Wire form, chosen for one cheap parse and binary-safe bodies:
``b"CLR1" | uint32 big-endian length of meta | meta JSON | body bytes``; the meta's
properties, content type and content encoding are left out when they are the defaults.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

from celeriac.exceptions import DecodeError

MAGIC = b"CLR1"
# A message's content type and encoding when its metadata names none (JSON, UTF-8).
DEFAULT_CONTENT_TYPE = "application/json"
DEFAULT_CONTENT_ENCODING = "utf-8"
_LENGTH = struct.Struct(">I")
_PREFIX = len(MAGIC) + _LENGTH.size
_dump_meta = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
# One decoder, fed text: ``json.loads`` would build its arguments and guess the encoding
# of every message's metadata, which is always UTF-8 (strictly: no lone surrogates).
_load_meta = json.JSONDecoder().decode


def _check_unicode(meta: Any) -> None:
    """Refuse an unpaired surrogate (``"\\ud800"``): such text cannot be written back as
    UTF-8, so every log line, dead letter and result naming it would fail later."""
    try:
        _dump_meta(meta).encode("utf-8")
    except RecursionError:
        raise DecodeError("message metadata is nested too deeply to read") from None
    except UnicodeEncodeError:
        raise DecodeError(
            "message metadata holds text that is not valid Unicode (an unpaired surrogate "
            "escape such as \\ud800)"
        ) from None


@dataclass(slots=True)
class Message:
    """One task message: what a producer publishes and a worker receives."""

    headers: dict[str, Any]
    body: bytes
    content_type: str = DEFAULT_CONTENT_TYPE
    content_encoding: str = DEFAULT_CONTENT_ENCODING
    properties: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return str(self.headers["id"])

    @property
    def task_name(self) -> str:
        return str(self.headers["task"])

    def encode(self) -> bytes:
        # What a reader takes for absent is left out: every reader of this envelope has
        # filled in these defaults, and a queued message is what fills a broker's memory.
        meta: dict[str, Any] = {"h": self.headers}
        if self.properties:
            meta["p"] = self.properties
        if self.content_type != DEFAULT_CONTENT_TYPE:
            meta["ct"] = self.content_type
        if self.content_encoding != DEFAULT_CONTENT_ENCODING:
            meta["ce"] = self.content_encoding
        encoded = _dump_meta(meta).encode("utf-8")
        return b"".join((MAGIC, _LENGTH.pack(len(encoded)), encoded, self.body))

    @classmethod
    def decode(cls, data: bytes) -> Message:
        """Read a message from its wire form; raise ``DecodeError`` naming what is wrong."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise DecodeError(f"message payload must be bytes, not {type(data).__name__}")
        data = bytes(data)
        if data[: len(MAGIC)] != MAGIC:
            raise DecodeError("not a celeriac message: the payload does not start with b'CLR1'")
        if len(data) < _PREFIX:
            raise DecodeError("truncated message: the header length is missing")
        (meta_len,) = _LENGTH.unpack_from(data, len(MAGIC))
        if _PREFIX + meta_len > len(data):
            raise DecodeError(
                f"truncated message: header says {meta_len} bytes of metadata, "
                f"only {len(data) - _PREFIX} present"
            )
        raw = data[_PREFIX : _PREFIX + meta_len]
        try:
            meta = _load_meta(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DecodeError(f"message metadata is not valid JSON: {exc}") from None
        except RecursionError:  # the parser's depth limit: nothing celeriac writes nests so
            raise DecodeError("message metadata is nested too deeply to read") from None
        if b"\\u" in raw:  # only an escape can make text that is not valid Unicode
            _check_unicode(meta)
        if not isinstance(meta, dict) or not isinstance(meta.get("h"), dict):
            raise DecodeError("message metadata has no headers object")
        headers = meta["h"]
        for required in ("id", "task"):
            if not isinstance(headers.get(required), str) or not headers[required]:
                raise DecodeError(f"message headers lack a string {required!r}")
        properties = meta.get("p") or {}
        if not isinstance(properties, dict):
            raise DecodeError("message properties must be an object")
        content_type, content_encoding = meta.get("ct"), meta.get("ce")
        for name, value in (("content type", content_type), ("content encoding", content_encoding)):
            if value is not None and not isinstance(value, str):
                raise DecodeError(f"message {name} must be a string, not {type(value).__name__}")
        return cls(
            headers=headers,
            body=data[_PREFIX + meta_len :],
            content_type=content_type or DEFAULT_CONTENT_TYPE,
            content_encoding=content_encoding or DEFAULT_CONTENT_ENCODING,
            properties=properties,
        )
