"""Compressed result records (``result_compression``).

Imports ``messages.compression`` and leaves only. A stored record has no header to say
how it was compressed, so a compressed one says it in front of its bytes, framed as
Celery frames its results (``NUL celery-compressed NUL <content type> NUL <body>``): a
record no serializer could write, so records stored before compression was turned on
still read as they are, and compressed ones read anywhere, whatever the reader's setting.
"""

from __future__ import annotations

from celeriac.exceptions import DecodeError, EncodeError, ImproperlyConfigured
from celeriac.messages import compression

MAGIC = b"\x00celery-compressed\x00"


def check_method(method: str | None) -> str | None:
    """``method`` if this process can compress with it (None: no compression)."""
    if method is None:
        return None
    try:
        compression.compress(b"", method)
    except EncodeError as exc:
        raise ImproperlyConfigured(f"result_compression: {exc}") from None
    return method


def compress_record(record: bytes, method: str) -> bytes:
    body, content_type = compression.compress(record, method)
    return b"".join((MAGIC, content_type.encode(), b"\x00", body))


def decompress_record(raw: bytes) -> bytes:
    """The record inside ``raw`` if it is a compressed one, else ``raw`` as it is."""
    if not raw.startswith(MAGIC):
        return raw
    content_type, _, body = raw[len(MAGIC) :].partition(b"\x00")
    try:
        return compression.decompress(body, content_type.decode())
    except (DecodeError, UnicodeDecodeError) as exc:
        raise DecodeError(
            f"a stored result is compressed in a way this process cannot read ({exc}); "
            f"install the package its writer used (brotli, zstandard)"
        ) from exc


__all__ = ["MAGIC", "check_method", "compress_record", "decompress_record"]
