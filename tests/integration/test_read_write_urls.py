"""``broker_read_url`` / ``broker_write_url`` with a real worker on Redis: calls are
published to the write URL, and the worker consumes from the read URL only."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import redis

from celeriac import Celery
from celeriac.testing import start_worker


def _other_db(url: str) -> str:
    parts = urlsplit(url)
    db = int(parts.path.strip("/") or 0)
    return urlunsplit(parts._replace(path=f"/{14 if db == 15 else 15}"))


def test_the_worker_consumes_from_the_read_url_and_calls_go_to_the_write_url(
    redis_url: str, redis_prefix: str
) -> None:
    # Given a write broker and a read broker in two databases of one Redis
    read = _other_db(redis_url)
    app = Celery(
        "split", broker_write_url=redis_url, broker_read_url=read, backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix}, set_as_current=False,
    )  # fmt: skip

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        with start_worker(app) as worker:
            assert worker.consumer is not None and worker.consumer.broker is app.read_broker
            # When a call goes to the write URL, the worker (on the read URL) never sees it
            unseen = add.delay(1, 1)
            # and a call sent through a handle on the read URL is run
            with app.connection_for_read() as reading:
                seen = add.apply_async((2, 2), connection=reading)
                assert seen.get(timeout=10) == 4
            assert unseen.state == "PENDING"
            assert app.broker.queue_length("celery") == 1
    finally:
        app.close()
        client = redis.Redis.from_url(read)
        keys = list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
