"""``JobThreads``: the threads pool's threads and the hand-back of each job's outcome to
the worker's loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

from celeriac.worker.pools.job_threads import JobThreads

WAIT = 10


def test_each_job_gets_its_own_result_or_error_back_on_the_loop() -> None:
    def job(n: int) -> int:
        if n % 7 == 0:
            raise ValueError(f"bad {n}")
        return n * n

    async def main() -> None:
        threads = JobThreads(4, "t", asyncio.get_running_loop())
        futures = [threads.submit(job, n) for n in range(200)]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        threads.shutdown(wait=True)
        for n, outcome in enumerate(outcomes):
            if n % 7 == 0:
                assert isinstance(outcome, ValueError) and str(outcome) == f"bad {n}"
            else:
                assert outcome == n * n

    asyncio.run(main())


def test_threads_start_as_jobs_need_them_and_never_more_than_the_size() -> None:
    release, three_running = threading.Event(), threading.Event()
    names: set[str] = set()
    lock = threading.Lock()

    def blocking() -> None:
        with lock:
            names.add(threading.current_thread().name)
            if len(names) == 3:
                three_running.set()  # each thread holds a job: none can take another
        assert release.wait(WAIT)

    async def main() -> None:
        threads = JobThreads(3, "celeriac-threads", asyncio.get_running_loop())
        first = [threads.submit(blocking) for _ in range(2)]
        assert sorted(t.name for t in threads._threads) == [
            "celeriac-threads_0",
            "celeriac-threads_1",
        ]
        more = [threads.submit(blocking) for _ in range(5)]  # one more thread, then queued
        assert len(threads._threads) == 3
        assert await asyncio.to_thread(three_running.wait, WAIT)
        assert names == {"celeriac-threads_0", "celeriac-threads_1", "celeriac-threads_2"}
        release.set()
        await asyncio.gather(*first, *more)
        again = threads.submit(lambda: threading.current_thread().name)
        assert await again in names and len(threads._threads) == 3  # reused, none started
        threads.shutdown(wait=True)
        assert not any(t.is_alive() for t in threads._threads)

    asyncio.run(main())


def test_shutdown_cancels_queued_jobs_and_lets_the_running_one_finish() -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def running() -> str:
        started.set()
        assert release.wait(WAIT)
        ran.append("running")
        return "done"

    async def main() -> None:
        threads = JobThreads(1, "t", asyncio.get_running_loop())
        first = threads.submit(running)
        queued = [threads.submit(ran.append, "queued") for _ in range(3)]
        assert await asyncio.to_thread(started.wait, WAIT)
        threads.shutdown(wait=False, cancel_pending=True)
        assert all(job.cancelled() for job in queued)
        with pytest.raises(RuntimeError, match="shut down"):
            threads.submit(ran.append, "late")
        release.set()
        assert await first == "done"
        await asyncio.to_thread(threads._threads[0].join, WAIT)
        assert ran == ["running"] and not threads._threads[0].is_alive()

    asyncio.run(main())


def test_shutdown_without_cancel_runs_what_was_queued_first() -> None:
    release = threading.Event()
    ran: list[int] = []

    async def main() -> None:
        threads = JobThreads(1, "t", asyncio.get_running_loop())
        jobs = [threads.submit(lambda: release.wait(WAIT))]
        jobs += [threads.submit(ran.append, n) for n in range(3)]
        threads.shutdown(wait=False)
        release.set()
        await asyncio.gather(*jobs)
        assert ran == [0, 1, 2]

    asyncio.run(main())


def test_an_outcome_for_a_waiter_cancelled_meanwhile_is_dropped() -> None:
    release = threading.Event()

    async def main() -> None:
        threads = JobThreads(1, "t", asyncio.get_running_loop())
        job = threads.submit(lambda: release.wait(WAIT) and "late")
        job.cancel()  # a cold shutdown stops waiting; the body still runs to its end
        release.set()
        follow = threads.submit(lambda: "next")  # handed back after the cancelled one
        assert await follow == "next"
        assert job.cancelled()
        threads.shutdown(wait=True)

    asyncio.run(main())
