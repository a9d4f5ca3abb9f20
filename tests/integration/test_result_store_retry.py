"""``result_backend_always_retry`` on a real Redis whose connection is cut: the read is
repeated until the connection is back (the cut is restored when the first retry is
logged), and without the setting the lost connection is raised at once."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from celeriac import Celery, states
from celeriac.exceptions import BackendConnectionError
from tests.integration.proxy import Proxy


@pytest.fixture
def proxy(redis_url: str) -> Iterator[Proxy]:
    target = urlsplit(redis_url)
    cut = Proxy(target.hostname or "127.0.0.1", target.port or 6379)
    cut.restore()
    yield cut
    cut.close()


def _app(proxy: Proxy, redis_url: str, prefix: str, **conf: object) -> Celery:
    url = f"redis://127.0.0.1:{proxy.port}{urlsplit(redis_url).path}"
    return Celery(
        "retry", broker="memory://", backend=url, set_as_current=False,
        result_backend_transport_options={"key_prefix": prefix}, **conf,
    )  # fmt: skip


class RestoreOnRetry(logging.Handler):
    """Brings the connection back when the store logs its first retry."""

    def __init__(self, proxy: Proxy) -> None:
        super().__init__()
        self.proxy, self.retries = proxy, 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += 1
        if self.retries == 1:
            self.proxy.restore()


def test_a_read_is_retried_until_the_store_is_back(
    proxy: Proxy, redis_url: str, redis_prefix: str
) -> None:
    app = _app(
        proxy, redis_url, redis_prefix, result_backend_always_retry=True,
        result_backend_base_sleep_between_retries_ms=5,
    )  # fmt: skip
    app.backend.store_result("t1", {"answer": 42}, states.SUCCESS)
    handler = RestoreOnRetry(proxy)
    logger = logging.getLogger("celeriac.results")
    logger.addHandler(handler)
    try:
        proxy.cut()
        assert app.AsyncResult("t1").get(timeout=10) == {"answer": 42}
    finally:
        logger.removeHandler(handler)
        app.backend.close()
    assert handler.retries >= 1


def test_without_the_setting_a_lost_connection_is_raised(
    proxy: Proxy, redis_url: str, redis_prefix: str
) -> None:
    app = _app(proxy, redis_url, redis_prefix)
    try:
        app.backend.store_result("t1", 1, states.SUCCESS)
        proxy.cut()
        with pytest.raises(BackendConnectionError, match="cannot reach the Redis result"):
            app.backend.get_task_meta("t1")
    finally:
        app.backend.close()
