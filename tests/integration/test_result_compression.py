"""``result_compression`` on the Redis result store: the record in Redis is compressed,
and an app without the setting (or an older celeriac record) reads alongside."""

from __future__ import annotations

import redis

from celeriac import Celery, states
from celeriac.results.compressed import MAGIC

BIG = {"rows": ["celeriac"] * 5_000}


def _app(redis_url: str, prefix: str, **conf: object) -> Celery:
    return Celery(
        "rc", broker="memory://", backend=redis_url, set_as_current=False,
        result_backend_transport_options={"key_prefix": prefix}, **conf,
    )  # fmt: skip


def test_compressed_records_in_redis_read_back_everywhere(
    redis_url: str, redis_prefix: str
) -> None:
    writer = _app(redis_url, redis_prefix, result_compression="gzip")
    reader = _app(redis_url, redis_prefix)
    try:
        writer.backend.store_result("packed", BIG, states.SUCCESS)
        reader.backend.store_result("plain", BIG, states.SUCCESS)
        with redis.Redis.from_url(redis_url) as client:
            packed = client.hget(f"{redis_prefix}:result:task:packed", "value")
            plain = client.hget(f"{redis_prefix}:result:task:plain", "value")
        assert packed is not None and packed.startswith(MAGIC)
        assert plain is not None and len(packed) < len(plain) // 20
        for app in (writer, reader):
            assert app.AsyncResult("packed").get(timeout=5) == BIG
            assert app.AsyncResult("plain").get(timeout=5) == BIG
    finally:
        writer.backend.close()
        reader.backend.close()
