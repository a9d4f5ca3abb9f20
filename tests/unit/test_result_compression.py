"""``result_compression``: stored result records are compressed and say so in front, so
every reader reads them, and records stored uncompressed still read."""

from __future__ import annotations

import pytest

from celeriac import Celery, states
from celeriac.exceptions import DecodeError, ImproperlyConfigured
from celeriac.results.base import ResultBackend
from celeriac.results.compressed import MAGIC, decompress_record
from celeriac.results.memory import MemoryBackend
from celeriac.testing import drain

BIG = "celeriac " * 2_000


def _raw(store: ResultBackend, task_id: str) -> bytes:
    raw = store._get(store.records.task_key(task_id))
    assert raw is not None
    return raw


@pytest.mark.parametrize("method", ["zlib", "bzip2", "lzma"])
def test_a_compressed_record_is_smaller_and_reads_back(method: str) -> None:
    app = Celery(
        "c", broker="memory://", backend="cache+memory://", set_as_current=False,
        result_compression=method,
    )  # fmt: skip

    @app.task
    def echo(text: str) -> str:
        return text

    result = echo.delay(BIG)
    drain(app)
    assert result.get(timeout=5) == BIG
    raw = _raw(app.backend, result.id)
    assert raw.startswith(MAGIC) and len(raw) < len(BIG) // 10


def test_old_and_new_records_read_whatever_the_readers_setting() -> None:
    store = MemoryBackend()
    store.store_result("plain", BIG, states.SUCCESS)  # before compression was turned on
    store.compression = "zlib"
    store.store_result("packed", BIG, states.SUCCESS)
    assert not _raw(store, "plain").startswith(MAGIC)
    assert _raw(store, "packed").startswith(MAGIC)
    for compression in ("zlib", None):
        store.compression = compression
        assert [m["result"] for m in store.get_many_meta(["plain", "packed"])] == [BIG, BIG]


def test_an_unknown_method_names_the_setting_and_the_choices() -> None:
    app = Celery(
        "c", broker="memory://", backend="cache+memory://", set_as_current=False,
        result_compression="rar",
    )  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match=r"result_compression: .*'rar'.*zlib"):
        app.backend  # noqa: B018


def test_a_record_compressed_with_a_missing_method_is_a_clear_decode_error() -> None:
    with pytest.raises(DecodeError, match="compressed in a way this process cannot read"):
        decompress_record(MAGIC + b"application/x-unknown\x00data")
