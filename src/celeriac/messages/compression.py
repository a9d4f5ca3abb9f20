"""Message body compression: ``apply_async(compression='zlib')`` and ``task_compression``.

A compressed message carries the method's content type in its ``compression`` header, as
Celery's do (``application/x-gzip`` for zlib), and the worker decompresses the body before
it is deserialized. The standard library's zlib, bz2 and lzma are always there; brotli and
zstd when their packages are installed (``brotli``, ``zstandard``).
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from celeriac.exceptions import DecodeError, EncodeError


@dataclass(frozen=True)
class Method:
    content_type: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


_BY_TYPE: dict[str, Method] = {}
_BY_NAME: dict[str, Method] = {}


def register(
    content_type: str,
    compress: Callable[[bytes], bytes],
    decompress: Callable[[bytes], bytes],
    *names: str,
) -> None:
    """Make a compression method available under ``names`` (and its content type)."""
    method = Method(content_type, compress, decompress)
    _BY_TYPE[content_type] = method
    for name in (content_type, *names):
        _BY_NAME[name] = method


register("application/x-gzip", zlib.compress, zlib.decompress, "zlib", "gzip")
register("application/x-bz2", bz2.compress, bz2.decompress, "bzip2", "bzip")
register("application/x-lzma", lzma.compress, lzma.decompress, "lzma", "xz")
try:  # optional: pip install brotli
    import brotli

    register("application/x-brotli", brotli.compress, brotli.decompress, "brotli")
except ModuleNotFoundError:
    pass
try:  # optional: pip install zstandard
    import zstandard

    register(
        "application/zstd",
        zstandard.ZstdCompressor().compress,
        zstandard.ZstdDecompressor().decompress,
        "zstd",
        "zstandard",
    )
except ModuleNotFoundError:
    pass


def names() -> list[str]:
    return sorted(name for name in _BY_NAME if "/" not in name)


def compress(body: bytes, method: str) -> tuple[bytes, str]:
    """``body`` compressed with ``method`` (a name such as ``'zlib'``); the bytes and the
    content type to put in the message's ``compression`` header."""
    found = _BY_NAME.get(method) if isinstance(method, str) else None
    if found is None:
        raise EncodeError(
            f"compression {method!r} is not available: use one of {', '.join(names())} "
            f"(brotli and zstd need their packages: pip install brotli / zstandard)"
        )
    return found.compress(body), found.content_type


def decompress(body: bytes, content_type: str) -> bytes:
    """The body a ``compression`` header says is compressed, restored; ``DecodeError`` when
    the method is unknown here or the bytes are not what it says."""
    found = _BY_TYPE.get(content_type) if isinstance(content_type, str) else None
    if found is None:
        raise DecodeError(
            f"the message is compressed with {content_type!r}, which this worker cannot "
            f"decompress: install its package, or send with one of {', '.join(names())}"
        )
    try:
        return found.decompress(body)
    except Exception as exc:  # each library raises its own error type for bad input
        raise DecodeError(f"the message body is not valid {content_type} data: {exc}") from exc
