"""A cluster-wide rate limit: every worker draws from one bucket in Redis."""

from __future__ import annotations

import threading
import time

from celeriac import Celery
from celeriac.testing import start_worker


def test_two_workers_share_one_budget(redis_url: str, redis_prefix: str) -> None:
    app = Celery(
        "crl", broker=redis_url, backend="cache+memory://",
        broker_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    runs: list[float] = []
    lock = threading.Lock()

    @app.task(rate_limit="5/s", rate_limit_scope="cluster")
    def shared() -> None:
        with lock:
            runs.append(time.monotonic())

    with start_worker(app, concurrency=2), start_worker(app, concurrency=2):
        results = [shared.delay() for _ in range(6)]
        for result in results:
            result.get(timeout=15)
    ordered = sorted(runs)
    assert len(runs) == 6
    # One budget of 5/s for both workers: six runs take at least five intervals of 0.2 s
    # (two per-worker buckets would let pairs through at once, in about half that). The
    # tokens are spaced, not the bodies: a loaded machine may start one body late, so the
    # gaps between single runs are no measure.
    assert ordered[-1] - ordered[0] >= 5 * 0.18, ordered
    app.close()
