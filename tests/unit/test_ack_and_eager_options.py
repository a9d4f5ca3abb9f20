"""Task options on what happens around the body: ``acks_on_failure_or_timeout`` and
Celery 5.7's ``acks_on_failure``/``acks_on_timeout`` (how a failed task's message is
settled) and ``store_eager_result`` (eager calls recorded)."""

from __future__ import annotations

import pytest

from celeriac import Celery, states
from celeriac.brokers.base import DeadLetterReason
from celeriac.exceptions import TimeLimitExceeded
from celeriac.testing import drain


def test_a_failed_task_is_acked_by_default(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("no")

    result = boom.delay()
    drain(app)

    assert result.state == states.FAILURE
    assert app.broker.queue_length("celery") == 0
    assert app.broker.dead_letters("celery") == []


@pytest.mark.parametrize("where", ["task", "setting"])
def test_without_acks_on_failure_a_failed_task_goes_to_the_dead_letters(
    app: Celery, where: str
) -> None:
    if where == "setting":
        app.conf.task_acks_on_failure_or_timeout = False
        options = {}
    else:
        options = {"acks_on_failure_or_timeout": False}

    @app.task(**options)
    def boom() -> None:
        raise ValueError("no")

    result = boom.delay()
    drain(app)

    # The failure is recorded as always; the message is rejected, not acked.
    assert result.state == states.FAILURE
    [dead] = app.broker.dead_letters("celery")
    assert dead.reason is DeadLetterReason.FAILED
    assert "ValueError('no')" in dead.detail
    assert app.broker.queue_length("celery") == 0


def test_without_acks_on_timeout_a_timed_out_task_runs_again(app: Celery) -> None:
    # A hard time limit reaches the body as TimeLimitExceeded (the pools raise it; drain
    # applies no limits, so the body raises it itself here).
    runs: list[int] = []

    @app.task(acks_on_failure_or_timeout=False)
    def overrun() -> None:
        runs.append(1)
        raise TimeLimitExceeded(1.0)

    app.conf.task_delivery_limit = 2
    result = overrun.delay()
    drain(app)  # runs it, requeues it, runs it again: the limit then buries it

    assert len(runs) == 2 and result.state == states.FAILURE
    [dead] = app.broker.dead_letters("celery")
    assert dead.reason is DeadLetterReason.DELIVERY_LIMIT
    assert "timed out" in dead.detail


def test_the_split_options_win_over_the_combined_one(app: Celery) -> None:
    app.conf.task_acks_on_failure = True  # the setting for failures beats the task's combined

    @app.task(acks_on_failure_or_timeout=False)
    def boom() -> None:
        raise ValueError("no")

    @app.task(acks_on_failure=False)
    def split() -> None:
        raise ValueError("no")

    boom.delay()
    drain(app)
    assert app.broker.dead_letters("celery") == []  # acked
    split.delay()
    drain(app)
    [dead] = app.broker.dead_letters("celery")
    assert dead.reason is DeadLetterReason.FAILED


def test_acks_on_failure_leaves_a_success_acked(app: Celery) -> None:
    @app.task(acks_on_failure_or_timeout=False)
    def fine() -> int:
        return 1

    fine.delay()
    drain(app)
    assert app.broker.dead_letters("celery") == []


def test_store_eager_result_per_task_overrides_the_setting(app: Celery) -> None:
    app.conf.task_always_eager = True

    @app.task(store_eager_result=True)
    def kept() -> int:
        return 1

    @app.task
    def not_kept() -> int:
        return 2

    kept_id, not_kept_id = kept.delay().id, not_kept.delay().id
    assert app.backend.get_task_meta(kept_id)["status"] == states.SUCCESS
    assert app.backend.get_task_meta(not_kept_id)["status"] == states.PENDING

    app.conf.task_store_eager_result = True

    @app.task(store_eager_result=False)
    def opted_out() -> int:
        return 3

    assert app.backend.get_task_meta(opted_out.delay().id)["status"] == states.PENDING
    assert app.backend.get_task_meta(not_kept.delay().id)["status"] == states.SUCCESS


def test_an_ignored_result_is_not_stored_even_with_store_eager_result(app: Celery) -> None:
    @app.task(store_eager_result=True, ignore_result=True)
    def quiet() -> int:
        return 1

    assert app.backend.get_task_meta(quiet.apply().id)["status"] == states.PENDING


def test_forget_deletes_what_store_eager_result_stored(app: Celery) -> None:
    @app.task(store_eager_result=True)
    def kept() -> int:
        return 1

    result = kept.apply()
    assert result.exists()
    result.forget()
    assert not result.exists()
