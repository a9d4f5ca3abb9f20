"""A cluster-wide rate limit: every worker draws from one bucket in Redis."""

from __future__ import annotations

import itertools
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
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert len(runs) == 6
    # One budget of 5/s for both workers (two per-worker buckets would allow pairs at once).
    assert min(gaps) >= 0.12, gaps
    assert ordered[-1] - ordered[0] >= 5 * 0.18
    app.close()
