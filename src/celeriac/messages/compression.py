"""Message body compression: ``apply_async(compression='zlib')`` and ``task_compression``.

A compressed message carries the method's content type in its ``compression`` header, as
Celery's do (``application/x-gzip`` for zlib), and the worker decompresses the body before
it is deserialized. The standard library's zlib, bz2 and lzma are always there; brotli and
zstd when their packages are installed (``brotli``, ``zstandard``). Decompressing with a
``max_size`` stops once the output passes it, so a small bomb never fills memory.
"""

from __future__ import annotations

import bz2
import io
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celeriac.exceptions import DecodeError, EncodeError, MessageTooLarge

LZMA_MEMORY_LIMIT = 80 * 1024 * 1024  # bytes the lzma decoder may use for one body

#: ``(data, limit)`` -> at most ``limit`` bytes of output (more means the data is larger).
Bounded = Callable[[bytes, int], bytes]


@dataclass(frozen=True)
class Method:
    content_type: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]
    bounded: Bounded | None = None


def _streaming(make: Callable[[], Any]) -> Bounded:
    """A bounded decompress for the standard library's decompressor objects (zlib, bz2,
    lzma), whose ``decompress(data, max_length)`` stops at ``max_length`` bytes."""

    def bounded(data: bytes, limit: int) -> bytes:
        decompressor = make()
        out = decompressor.decompress(data, limit)
        if len(out) < limit and not decompressor.eof:
            raise ValueError("the compressed data is truncated (its stream has no end)")
        return bytes(out)

    return bounded


_BY_TYPE: dict[str, Method] = {}
_BY_NAME: dict[str, Method] = {}


def register(
    content_type: str,
    compress: Callable[[bytes], bytes],
    decompress: Callable[[bytes], bytes],
    *names: str,
    bounded: Bounded | None = None,
) -> None:
    """Make a compression method available under ``names`` (and its content type);
    ``bounded`` decompresses no more than a limit (without it, the whole output is made
    before its size is checked)."""
    method = Method(content_type, compress, decompress, bounded)
    _BY_TYPE[content_type] = method
    for name in (content_type, *names):
        _BY_NAME[name] = method


register(
    "application/x-gzip",
    zlib.compress,
    zlib.decompress,
    "zlib",
    "gzip",
    bounded=_streaming(zlib.decompressobj),
)
register(
    "application/x-bz2",
    bz2.compress,
    bz2.decompress,
    "bzip2",
    "bzip",
    bounded=_streaming(bz2.BZ2Decompressor),
)
register(
    "application/x-lzma", lzma.compress, lzma.decompress, "lzma", "xz",
    # A stream's header names the dictionary the decoder allocates: cap it (preset 9
    # needs about 65 MiB, the default preset 6 about 9 MiB).
    bounded=_streaming(lambda: lzma.LZMADecompressor(memlimit=LZMA_MEMORY_LIMIT)),
)  # fmt: skip
try:  # optional: pip install brotli
    import brotli

    register("application/x-brotli", brotli.compress, brotli.decompress, "brotli")
except ModuleNotFoundError:
    pass
try:  # optional: pip install zstandard
    import zstandard

    def _zstd_bounded(data: bytes, limit: int) -> bytes:
        # A stream read: a frame's declared size is never allocated up front.
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return bytes(reader.read(limit))

    register(
        "application/zstd",
        zstandard.ZstdCompressor().compress,
        zstandard.ZstdDecompressor().decompress,
        "zstd",
        "zstandard",
        bounded=_zstd_bounded,
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


def decompress(body: bytes, content_type: str, max_size: int | None = None) -> bytes:
    """The body a ``compression`` header says is compressed, restored; ``DecodeError`` when
    the method is unknown here or the bytes are not what it says, ``MessageTooLarge`` when
    the restored body would pass ``max_size`` bytes."""
    found = _BY_TYPE.get(content_type) if isinstance(content_type, str) else None
    if found is None:
        raise DecodeError(
            f"the message is compressed with {content_type!r}, which this worker cannot "
            f"decompress: install its package, or send with one of {', '.join(names())}"
        )
    try:
        if max_size is not None and found.bounded is not None:
            restored = found.bounded(body, max_size + 1)
        else:
            restored = found.decompress(body)
    except Exception as exc:  # each library raises its own error type for bad input
        raise DecodeError(f"the message body is not valid {content_type} data: {exc}") from exc
    if max_size is not None and len(restored) > max_size:
        raise MessageTooLarge(
            f"the message body decompresses to more than {max_size} bytes "
            f"(task_message_max_size): refused before it is read"
        )
    return restored
