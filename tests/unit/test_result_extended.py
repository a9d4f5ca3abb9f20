"""``result_extended``: the store records the call's name, args, kwargs, worker, retries
and queue with its result, for every engine (the base class adds them)."""

from __future__ import annotations

import datetime as dt

from celeriac import Celery, states
from celeriac.testing import drain


def test_extended_results_keep_the_call(app: Celery) -> None:
    app.conf.result_extended = True

    @app.task(name="shop.price")
    def price(item: str, quantity: int = 1) -> int:
        return 3 * quantity

    result = price.apply_async(("pear",), {"quantity": 2}, queue="celery")
    drain(app)

    reread = app.AsyncResult(result.id)  # a fresh handle: everything from the store
    assert reread.get(timeout=1) == 6
    assert reread.name == "shop.price"
    assert (reread.args, reread.kwargs) == (["pear"], {"quantity": 2})
    assert (reread.queue, reread.worker, reread.retries) == ("celery", "drain@localhost", 0)
    assert isinstance(reread.date_done, dt.datetime)


def test_without_result_extended_only_the_outcome_and_name_are_kept(app: Celery) -> None:
    @app.task(name="shop.count")
    def count(item: str) -> int:
        return 1

    result = count.delay("fig")
    drain(app)

    reread = app.AsyncResult(result.id)
    assert reread.get(timeout=1) == 1
    assert reread.name == "shop.count"  # stored with every result, as before
    assert (reread.args, reread.kwargs, reread.queue, reread.worker) == (None, None, None, None)


def test_extended_fields_are_recorded_for_failures_and_retries(app: Celery) -> None:
    app.conf.result_extended = True

    @app.task(bind=True, max_retries=1, default_retry_delay=0)
    def flaky(self: object, n: int) -> None:
        raise self.retry(exc=ValueError(n))

    result = flaky.delay(7)
    drain(app)  # the first run, then its retry (due at once)

    reread = app.AsyncResult(result.id)
    assert reread.state == states.FAILURE
    assert (reread.args, reread.retries) == ([7], 1)


def test_eager_results_stored_with_store_eager_result_are_extended_too(app: Celery) -> None:
    app.conf.update(result_extended=True, task_store_eager_result=True)

    @app.task
    def double(x: int) -> int:
        return 2 * x

    result = double.apply((4,))
    reread = app.AsyncResult(result.id)
    assert (reread.result, reread.args, reread.kwargs) == (8, [4], {})
    assert reread.exists() and not app.AsyncResult("never-sent").exists()
