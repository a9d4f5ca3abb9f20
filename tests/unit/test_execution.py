"""Executing messages: the path a worker takes, stepped by hand with drain()."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import pytest

from celeriac import Celery, signals, states
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import Ignore, Reject
from celeriac.messages.protocol import task_message
from celeriac.testing import drain
from celeriac.trace import trace_task
from celeriac.worker.execution import Job, prepare, settle


def publish_raw(app: Celery, payload: bytes, message_id: str = "raw-1") -> None:
    app.broker.publish(OutboundMessage("celery", payload, message_id))


def test_malformed_message_is_dead_lettered_and_the_next_one_runs(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    publish_raw(app, b"\x00garbage")
    result = add.delay(1, 2)
    with caplog.at_level(logging.ERROR, logger="celeriac.worker"):
        assert drain(app) == 2
    assert result.get(timeout=1) == 3
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.MALFORMED and letter.payload == b"\x00garbage"
    assert "not a celeriac message" in letter.detail
    assert "dead-lettered (malformed)" in caplog.text


def test_unknown_task_is_dead_lettered_with_the_name(app: Celery) -> None:
    unknown: list[str] = []
    signals.task_unknown.connect(
        lambda name=None, **kw: unknown.append(name), weak=False, dispatch_uid="test-unknown"
    )
    try:
        app.send_task("nobody.registered.this")
        drain(app)
    finally:
        signals.task_unknown.disconnect(dispatch_uid="test-unknown")
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.UNKNOWN_TASK
    assert "nobody.registered.this" in letter.detail and unknown == ["nobody.registered.this"]


def test_refused_content_type_is_dead_lettered(app: Celery) -> None:
    @app.task
    def echo(x: Any) -> Any:
        return x

    app.conf.task_serializer = "pickle"
    echo.delay(1)  # the producer may write pickle; this worker does not accept it
    drain(app)
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.CONTENT_DISALLOWED


def test_malformed_body_of_a_known_task_is_dead_lettered(app: Celery) -> None:
    @app.task
    def echo(x: Any) -> Any:
        return x

    message = task_message(task_name=echo.name, task_id="m1")
    message.body = b'{"not": "a list"}'
    publish_raw(app, message.encode(), "m1")
    drain(app)
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.MALFORMED and "3-item array" in letter.detail


def test_retry_is_republished_with_its_countdown_broker_side(app: Celery) -> None:
    @app.task(bind=True, max_retries=3)
    def send_email(self: Any, to: str) -> None:
        raise self.retry(exc=ConnectionError("smtp down"), countdown=60)

    result = send_email.delay("user@test.com")
    assert drain(app) == 1
    assert result.state == states.RETRY and isinstance(result.result, ConnectionError)
    assert app.broker.queue_length("celery") == 0
    assert app.broker.delayed_count("celery") == 1  # the retry waits in the broker


def test_a_retry_keeps_the_callers_headers(app: Celery) -> None:
    seen: list[tuple[int, str | None]] = []

    @app.task(bind=True, max_retries=1)
    def tenant_job(self: Any) -> None:
        seen.append((self.request.retries, getattr(self.request, "tenant", None)))
        if self.request.retries == 0:
            raise self.retry(countdown=0)  # due at once: the same drain runs it

    tenant_job.apply_async(headers={"tenant": "acme"})
    assert drain(app) == 2
    assert seen == [(0, "acme"), (1, "acme")]


def test_reject_without_requeue_dead_letters_with_the_reason(app: Celery) -> None:
    @app.task
    def refuse() -> None:
        raise Reject("poison pill", requeue=False)

    refuse.delay()
    drain(app)
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.REJECTED and "poison pill" in letter.detail


def test_reject_with_requeue_gives_the_message_back(app: Celery) -> None:
    runs: list[int] = []

    @app.task
    def once_more() -> str:
        runs.append(1)
        if len(runs) == 1:
            raise Reject("not yet", requeue=True)
        return "second time"

    result = once_more.delay()
    assert drain(app) == 2
    assert result.get(timeout=1) == "second time"


def test_ignore_acks_without_recording_anything(app: Celery) -> None:
    @app.task
    def skip() -> None:
        raise Ignore()

    result = skip.delay()
    drain(app)
    assert result.state == states.PENDING
    assert app.broker.queue_length("celery") == 0 and app.broker.dead_letters("celery") == []


def test_expired_message_is_not_run_and_is_recorded_revoked(app: Celery) -> None:
    ran: list[int] = []

    @app.task
    def stale() -> None:
        ran.append(1)

    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
    result = stale.apply_async(expires=past)
    drain(app)
    assert ran == [] and result.state == states.REVOKED
    assert "expired" in str(result.result)


def test_request_fields_reflect_the_message(app: Celery) -> None:
    seen: dict[str, Any] = {}

    @app.task(bind=True)
    def inspect_me(self: Any, x: int) -> None:
        r = self.request
        seen.update(
            id=r.id,
            args=r.args,
            retries=r.retries,
            queue=r.delivery_info["routing_key"],
            count=r.delivery_count,
            hostname=r.hostname,
            tenant=r.tenant,
            root=r.root_id,
            eager=r.is_eager,
        )

    result = inspect_me.apply_async((5,), queue="work", headers={"tenant": "acme"})
    drain(app, queues=["work"])
    assert seen == {
        "id": result.id,
        "args": (5,),
        "retries": 0,
        "queue": "work",
        "count": 1,
        "hostname": "drain@localhost",
        "tenant": "acme",
        "root": result.id,
        "eager": False,
    }


def test_subtask_carries_parent_and_root_ids(app: Celery) -> None:
    @app.task
    def child() -> None:
        return None

    @app.task
    def parent() -> str:
        return child.delay().id

    top = parent.delay()
    drain(app, limit=1)
    child_id = top.get(timeout=1)
    seen: dict[str, Any] = {}

    def capture(sender: Any = None, task_id: Any = None, task: Any = None, **kw: Any) -> None:
        seen.update(parent=task.request.parent_id, root=task.request.root_id)

    signals.task_prerun.connect(capture)
    try:
        drain(app)
    finally:
        signals.task_prerun.disconnect(capture)
    assert seen == {"parent": top.id, "root": top.id}
    assert app.AsyncResult(child_id).successful()


def test_settling_with_a_lost_lease_is_refused() -> None:
    now = [1000.0]
    app = Celery("t", broker=MemoryBroker(lease_seconds=30, clock=lambda: now[0]))

    @app.task
    def work() -> int:
        return 1

    work.delay()

    async def scenario() -> tuple[bool, bool]:
        [first] = await app.broker.fetch(["celery"], 1, timeout=0)
        job = prepare(app, first)
        assert isinstance(job, Job)
        outcome = trace_task(job.task, job.request)
        now[0] += 31  # the worker froze past its lease; another worker took over
        [second] = await app.broker.fetch(["celery"], 1, timeout=0)
        return await settle(job, outcome), await second.ack()

    stale_ack, new_ack = asyncio.run(scenario())
    assert (stale_ack, new_ack) == (False, True)


def test_unencodable_return_value_is_a_recorded_failure_not_a_crash(app: Celery) -> None:
    @app.task
    def returns_a_set() -> set[int]:
        return {1, 2}

    result = returns_a_set.delay()
    assert drain(app) == 1  # the worker path carries on
    assert result.state == states.FAILURE
    error = result.get(propagate=False)
    assert "result serializer cannot encode" in str(error) and "builtins.set" in str(error)
    assert app.broker.queue_length("celery") == 0 and app.broker.dead_letters("celery") == []


def test_a_callback_that_cannot_be_sent_is_logged_and_the_task_still_succeeds(
    app: Celery, caplog: pytest.LogCaptureFixture
) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    result = add.apply_async((1, 2), link=add.s(10).set(priority=99))
    with caplog.at_level(logging.ERROR, logger="celeriac.app.trace"):
        drain(app)
    assert result.get(timeout=1) == 3
    assert "could not apply" in caplog.text and "priority must be" in caplog.text


def test_a_failing_hook_becomes_a_recorded_internal_error(app: Celery) -> None:
    from celeriac import Task

    class BrokenHook(Task[Any, Any]):
        def on_success(self, *args: Any) -> None:
            raise RuntimeError("hook bug")

    @app.task(base=BrokenHook)
    def fine() -> int:
        return 1

    result = fine.delay()
    assert drain(app) == 1
    assert result.state == states.FAILURE and "hook bug" in str(result.result)


def test_reject_with_requeue_forever_ends_at_the_delivery_limit(app: Celery) -> None:
    @app.task
    def always_requeue() -> None:
        raise Reject("never ready", requeue=True)

    always_requeue.delay()
    assert drain(app) == app.conf.task_delivery_limit  # 5 runs, then it stops
    [letter] = app.broker.dead_letters("celery")
    assert letter.reason is DeadLetterReason.DELIVERY_LIMIT
    assert "rejected with requeue on 5 deliveries" in letter.detail


def test_unknown_task_result_raises_instead_of_waiting_forever(app: Celery) -> None:
    result = app.send_task("never.registered")
    drain(app)
    with pytest.raises(KeyError, match=r"never\.registered"):
        result.get(timeout=1)


def _succeeded_then_redelivered(app: Celery, now: list[float], **options: Any) -> Any:
    """A call whose task succeeded but whose worker died before the ack: delivered again."""

    if "welcome" not in app.tasks:  # (called twice on one app: define the task once)

        @app.task(name="welcome")
        def welcome(user_id: int) -> str:
            return "ran again"

    result = app.tasks["welcome"].apply_async((42,), **options)

    async def take_without_ack() -> None:
        assert await app.broker.fetch(["celery"], 1, 0)  # the first worker: no ack, dies

    asyncio.run(take_without_ack())
    app.backend.mark_as_done(result.id, "first run")
    now[0] += 31  # past its lease: the message comes back with delivery_count 2
    return result


def test_a_redelivered_message_with_an_idempotency_key_does_not_run_again() -> None:
    now = [1000.0]
    app = Celery("t", broker=MemoryBroker(clock=lambda: now[0]), backend="cache+memory://")
    result = _succeeded_then_redelivered(app, now, idempotency_key="welcome:42")
    assert drain(app) == 1
    assert result.get(timeout=1) == "first run"  # acked, not run: the result stands
    assert app.broker.queue_length("celery") == 0


def test_without_a_key_a_redelivered_message_runs_again_unless_deduplication_is_on() -> None:
    now = [1000.0]
    app = Celery("t", broker=MemoryBroker(clock=lambda: now[0]), backend="cache+memory://")
    result = _succeeded_then_redelivered(app, now)
    drain(app)
    assert result.get(timeout=1) == "ran again"  # at-least-once, as Celery
    app.conf.worker_deduplicate_successful_tasks = True
    again = _succeeded_then_redelivered(app, now)
    drain(app)
    assert again.get(timeout=1) == "first run"
