"""The worker's consumer and pools, run in a thread on the in-process broker."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from celeriac import Celery, signals, states
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.testing import start_worker


def make_app(**conf: Any) -> Celery:
    return Celery("w", broker="memory://", backend="cache+memory://", **conf)


def test_threads_pool_runs_tasks_and_stores_results() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, pool="threads", concurrency=2):
        results = [add.delay(n, n) for n in range(10)]
        assert [r.get(timeout=5) for r in results] == [2 * n for n in range(10)]


def test_async_tasks_run_natively_on_the_worker_loop_and_concurrently() -> None:
    app = make_app()
    seen: list[str] = []

    @app.task
    async def fetch(n: int) -> int:
        seen.append(threading.current_thread().name)
        await asyncio.sleep(0.3)  # I/O the loop can overlap
        return n

    @app.task
    def blocking() -> str:
        return threading.current_thread().name

    with start_worker(app, pool="asyncio", concurrency=3):
        started = time.monotonic()
        results = [fetch.delay(n) for n in range(3)]
        assert [r.get(timeout=5) for r in results] == [0, 1, 2]
        elapsed = time.monotonic() - started
        sync_thread = blocking.delay().get(timeout=5)
    assert set(seen) == {"celeriac-test-worker"}  # the worker's own loop thread
    assert elapsed < 0.8, "three 0.3 s coroutines did not overlap"
    assert sync_thread.startswith("celeriac-threads")  # sync tasks go to a thread


def test_async_tasks_also_run_in_the_threads_pool() -> None:
    app = make_app()

    @app.task
    async def double(n: int) -> int:
        await asyncio.sleep(0)
        return n * 2

    with start_worker(app, pool="threads"):
        assert double.delay(21).get(timeout=5) == 42


def test_solo_pool_runs_one_task_at_a_time() -> None:
    app = make_app()

    @app.task
    def name() -> str:
        return threading.current_thread().name

    with start_worker(app, pool="solo", concurrency=8) as worker:
        assert worker.concurrency == 1
        assert name.delay().get(timeout=5).startswith("celeriac-solo")


def test_fair_dispatch_a_busy_worker_holds_nothing_it_cannot_start() -> None:
    app = make_app()
    release = threading.Event()
    started = threading.Event()

    @app.task
    def long_task() -> str:
        started.set()
        release.wait(10)  # holds its slot until the test lets go
        return "long"

    @app.task
    def short_task(n: int) -> int:
        return n

    with start_worker(app, pool="threads", concurrency=1):
        long_result = long_task.delay()
        assert started.wait(5)
        shorts = [short_task.delay(n) for n in range(3)]
        # prefetch = 1 x 1: the three short messages stay in the broker for other workers
        assert app.broker.queue_length("celery") == 3
        release.set()
        assert long_result.get(timeout=5) == "long"
        assert [r.get(timeout=5) for r in shorts] == [0, 1, 2]


def test_a_long_task_does_not_delay_short_ones_while_another_slot_is_free() -> None:
    app = make_app()
    release = threading.Event()

    @app.task
    def long_task() -> str:
        release.wait(10)
        return "long"

    @app.task
    def short_task(n: int) -> int:
        return n

    with start_worker(app, pool="threads", concurrency=2):
        long_result = long_task.delay()
        shorts = [short_task.delay(n) for n in range(5)]
        assert [r.get(timeout=5) for r in shorts] == list(range(5))
        assert long_result.state == states.PENDING  # still running: it blocked nobody
        release.set()
        assert long_result.get(timeout=5) == "long"


def test_heartbeats_keep_a_long_task_from_being_delivered_twice() -> None:
    app = make_app(broker_transport_options={"visibility_timeout": 0.3})
    runs: list[int] = []

    @app.task
    def slow() -> int:
        runs.append(1)
        time.sleep(1.5)  # the task's own work: five lease periods long
        return len(runs)

    with start_worker(app, pool="threads", concurrency=1), start_worker(app, concurrency=1):
        assert slow.delay().get(timeout=10) == 1
    assert runs == [1]


def test_warm_shutdown_finishes_running_tasks_and_gives_back_the_rest() -> None:
    app = make_app()
    started = threading.Event()
    release = threading.Event()

    @app.task
    def running() -> str:
        started.set()
        release.wait(10)
        return "finished"

    @app.task
    def waiting() -> None:
        return None

    with start_worker(app, pool="threads", concurrency=1, prefetch_multiplier=4) as worker:
        result = running.delay()
        assert started.wait(5)
        for _ in range(3):
            waiting.delay()
        deadline = time.monotonic() + 5
        while len(worker.consumer.held) < 4:
            assert time.monotonic() < deadline, "the worker did not prefetch"
            time.sleep(0.01)
        # The running task may finish only once the shutdown has begun.
        signals.worker_shutting_down.connect(lambda **kw: release.set(), weak=False,
                                             dispatch_uid="release-on-shutdown")  # fmt: skip
    signals.worker_shutting_down.disconnect(dispatch_uid="release-on-shutdown")
    assert result.get(timeout=1) == "finished"
    assert app.broker.queue_length("celery") == 3  # given back, not lost


def test_cold_shutdown_gives_back_the_running_task() -> None:
    app = make_app()
    started = threading.Event()
    release = threading.Event()

    @app.task
    def stuck() -> None:
        started.set()
        release.wait(10)

    with start_worker(app, pool="threads", concurrency=1) as worker:
        stuck.delay()
        assert started.wait(5)
        worker.stop("cold")
    release.set()
    assert app.broker.queue_length("celery") == 1  # back in the queue for another worker


def test_a_malformed_message_is_dead_lettered_and_the_worker_goes_on() -> None:
    app = make_app()

    @app.task
    def ok() -> str:
        return "ok"

    with start_worker(app):
        app.broker.publish(OutboundMessage("celery", b"\x00\x01garbage", "bad"))
        assert ok.delay().get(timeout=5) == "ok"
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.MALFORMED


def test_several_queues_are_consumed() -> None:
    app = make_app()

    @app.task
    def where(tag: str) -> str:
        return tag

    with start_worker(app, queues=["default", "email-queue"], concurrency=2):
        a = where.apply_async(("a",), queue="default")
        b = where.apply_async(("b",), queue="email-queue")
        assert (a.get(timeout=5), b.get(timeout=5)) == ("a", "b")


def test_acks_late_false_acks_before_running_as_in_celery() -> None:
    app = make_app(task_acks_late=False)
    started = threading.Event()
    release = threading.Event()

    @app.task
    def early() -> None:
        started.set()
        release.wait(10)

    with start_worker(app, pool="threads", concurrency=1) as worker:
        early.delay()
        assert started.wait(5)
        worker.stop("cold")  # a crash now: the message was already acked
    release.set()
    assert app.broker.queue_length("celery") == 0  # gone: the price of early acks


def test_a_rate_limited_task_is_spaced_and_never_blocks_other_tasks() -> None:
    app = make_app()
    runs: list[float] = []

    @app.task(rate_limit="5/s")
    def limited() -> None:
        runs.append(time.monotonic())

    @app.task
    def free(n: int) -> int:
        return n

    with start_worker(app, pool="threads", concurrency=2):
        limited_results = [limited.delay() for _ in range(4)]
        free_started = time.monotonic()
        assert [free.delay(n).get(timeout=5) for n in range(5)] == list(range(5))
        free_done = time.monotonic() - free_started
        for result in limited_results:
            result.get(timeout=10)
    gaps = [b - a for a, b in zip(sorted(runs), sorted(runs)[1:], strict=False)]
    assert len(runs) == 4 and min(gaps) >= 0.15  # 5/s: about 0.2 s apart
    assert free_done < 0.5  # the unlimited task never waited behind the limited one


def test_worker_disable_rate_limits_lifts_them() -> None:
    app = make_app(worker_disable_rate_limits=True)

    @app.task(rate_limit="1/h")
    def hourly(n: int) -> int:
        return n

    with start_worker(app, pool="threads", concurrency=1):
        assert [hourly.delay(n).get(timeout=5) for n in range(3)] == [0, 1, 2]


def test_a_revoked_task_is_skipped_even_by_a_worker_started_later() -> None:
    app = make_app()
    runs: list[int] = []

    @app.task
    def doomed(n: int) -> None:
        runs.append(n)

    @app.task
    def fine() -> str:
        return "fine"

    revoked = doomed.delay(1)
    revoked.revoke()  # before any worker exists: stored in the broker with a TTL
    kept = doomed.delay(2)
    with start_worker(app, pool="threads", concurrency=1):
        assert kept.get(timeout=5) is None
        assert fine.delay().get(timeout=5) == "fine"
    assert runs == [2]
    assert revoked.state == states.REVOKED


def test_on_the_asyncio_pool_a_fetched_coroutine_starts_before_the_next_fetch() -> None:
    # An idle worker's next fetch is a blocking read: the body starts before it is
    # written, not after (the task's latency on an idle worker).
    app = make_app()
    broker = app.broker
    fetches = {"begun": 0, "ended": 0}
    real_fetch = broker.fetch

    async def counted_fetch(*args: Any, **kwargs: Any) -> Any:
        fetches["begun"] += 1
        try:
            return await real_fetch(*args, **kwargs)
        finally:
            fetches["ended"] += 1

    broker.fetch = counted_fetch  # the real fetch, counted

    @app.task
    async def fetches_out() -> int:
        return fetches["begun"] - fetches["ended"]

    with start_worker(app, pool="asyncio", concurrency=3):
        assert [fetches_out.delay().get(timeout=5) for _ in range(5)] == [0] * 5
