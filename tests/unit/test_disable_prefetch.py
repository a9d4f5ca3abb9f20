"""``worker_disable_prefetch``: the worker holds only what a free pool slot can start,
whatever ``worker_prefetch_multiplier`` says (Celery 5.5's setting)."""

from __future__ import annotations

from celeriac import Celery
from celeriac.testing import start_worker


def test_the_setting_holds_one_message_per_slot() -> None:
    app = Celery(
        "noprefetch", broker="memory://", backend="cache+memory://", set_as_current=False,
        worker_prefetch_multiplier=4, worker_disable_prefetch=True,
    )  # fmt: skip

    @app.task
    def later() -> str:
        return "later"

    with start_worker(app, pool="threads", concurrency=2) as worker:
        assert worker.prefetch_multiplier == 1
        assert worker.consumer is not None and worker.consumer.prefetch == 2
        assert later.delay().get(timeout=5) == "later"


def test_without_it_the_multiplier_counts() -> None:
    app = Celery(
        "prefetch", broker="memory://", backend="cache+memory://", set_as_current=False,
        worker_prefetch_multiplier=4,
    )  # fmt: skip
    with start_worker(app, pool="threads", concurrency=2) as worker:
        assert worker.consumer is not None and worker.consumer.prefetch == 8
