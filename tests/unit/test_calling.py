"""Calling tasks: delay, apply_async options on the message, routing, priorities, delays."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from celeriac import Celery, signals
from celeriac.exceptions import QueueNotFound
from celeriac.messages import decode_task_body, resolve_accept
from celeriac.request import Request
from tests.conftest import take_messages

JSON = resolve_accept(["json"])


@pytest.fixture
def add(app: Celery) -> Any:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    return add


def test_delay_publishes_a_protocol_v2_message(app: Celery, add: Any) -> None:
    result = add.delay(2, 3)
    [(message, priority)] = take_messages(app)
    assert message.id == result.id
    assert message.headers["task"] == add.name
    assert message.headers["argsrepr"] == "(2, 3)"
    # Defaults are left out, and a reader fills them in: the message stays small.
    assert "root_id" not in message.headers and "retries" not in message.headers
    request = Request.from_message(message, decode_task_body(message, JSON))
    assert (request.root_id, request.retries, request.correlation_id) == (result.id, 0, result.id)
    assert request.timelimit == (None, None) and request.ignore_result is False
    assert len(message.encode()) < 300
    assert message.content_type == "application/json"
    assert decode_task_body(message, JSON).args == (2, 3)
    assert priority == 0


def test_apply_async_with_eta_accepts_every_option_and_delays(app: Celery, add: Any) -> None:
    eta = dt.datetime(2030, 1, 1, tzinfo=dt.timezone.utc)
    add.apply_async(
        args=(1,),
        kwargs={"y": 2},
        task_id="my-id",
        eta=eta,
        expires=3600,
        queue="email-queue",
        priority=7,
        time_limit=300,
        soft_time_limit=240,
        ignore_result=True,
        headers={"tenant": "acme"},
        shadow="add-shadow",
        link=add.s(10),
        link_error=add.si(0, 0),
        idempotency_key="welcome:42",
    )
    assert app.broker.delayed_count("email-queue") == 1  # eta waits broker-side
    assert app.broker.queue_length("email-queue") == 0


def test_options_reach_the_worker_side_request(app: Celery, add: Any) -> None:
    add.apply_async(
        (1,),
        {"y": 2},
        task_id="my-id",
        expires=3600,
        queue="q",
        priority=7,
        time_limit=300,
        soft_time_limit=240,
        ignore_result=True,
        headers={"tenant": "acme"},
        link=add.s(10),
        idempotency_key="welcome:42",
    )
    [(message, priority)] = take_messages(app, "q")
    h = message.headers
    assert message.id == "my-id" and priority == 7
    assert h["timelimit"] == [300, 240] and h["ignore_result"] is True
    assert h["tenant"] == "acme" and h["idempotency_key"] == "welcome:42"
    expires = dt.datetime.fromisoformat(h["expires"])
    assert 3590 < (expires - dt.datetime.now(dt.timezone.utc)).total_seconds() <= 3600
    body = decode_task_body(message, JSON)
    assert body.kwargs == {"y": 2}
    assert body.embed["callbacks"][0]["task"] == add.name


def test_countdown_waits_in_the_broker_not_in_a_worker(app: Celery, add: Any) -> None:
    add.apply_async((1, 2), countdown=60)
    assert app.broker.delayed_count("celery") == 1
    assert take_messages(app) == []


def test_task_routes_by_name_and_glob_and_function(app: Celery, add: Any) -> None:
    @app.task(name="feeds.fetch")
    def fetch() -> None:
        return None

    def router(name: str, args: Any, kwargs: Any, options: Any, task: Any = None, **kw: Any) -> Any:
        return "from-function" if name == "other.task" else None

    app.conf.task_routes = [{add.name: {"queue": "math"}, "feeds.*": "feeds"}, router]
    add.delay(1, 1)
    fetch.delay()
    app.send_task("other.task")
    assert [len(take_messages(app, q)) for q in ("math", "feeds", "from-function")] == [1, 1, 1]


def test_explicit_queue_beats_routes_and_task_queue_attribute(app: Celery) -> None:
    @app.task(queue="attr-queue")
    def job() -> None:
        return None

    app.conf.task_routes = {job.name: {"queue": "routed"}}
    job.delay()
    job.apply_async(queue="explicit")
    assert len(take_messages(app, "attr-queue")) == 1
    assert len(take_messages(app, "explicit")) == 1


def test_undeclared_queue_is_refused_when_missing_queues_are_not_created(
    app: Celery, add: Any
) -> None:
    app.conf.update(task_queues=["default"], task_create_missing_queues=False)
    with pytest.raises(QueueNotFound, match="'elsewhere' is not in task_queues"):
        add.apply_async((1, 1), queue="elsewhere")


def test_priority_nine_is_served_first(app: Celery, add: Any) -> None:
    add.apply_async((0, 0), priority=0)
    add.apply_async((9, 9), priority=9)
    add.apply_async((5, 5), priority=5)
    assert [p for _, p in take_messages(app)] == [9, 5, 0]


def test_priority_out_of_range_is_refused_with_the_range(app: Celery, add: Any) -> None:
    with pytest.raises(ValueError, match="from 0 to 9"):
        add.apply_async((1, 1), priority=10)


def test_custom_task_id_is_honoured(app: Celery, add: Any) -> None:
    result = add.apply_async((1, 1), task_id="chosen-uuid")
    assert result.id == "chosen-uuid"
    assert take_messages(app)[0][0].id == "chosen-uuid"


def test_send_task_by_name_needs_no_local_task(app: Celery) -> None:
    result = app.send_task("remote.only", args=[1], kwargs={"a": 2}, countdown=0)
    [(message, _)] = take_messages(app)
    assert message.task_name == "remote.only" and message.id == result.id


def test_wrong_arguments_fail_at_call_time(app: Celery, add: Any) -> None:
    with pytest.raises(TypeError, match="missing a required argument: 'y'"):
        add.delay(1)
    assert app.broker.queue_length("celery") == 0


def test_misspelt_option_is_refused_not_ignored(app: Celery, add: Any) -> None:
    with pytest.raises(TypeError, match="countdwon"):
        add.apply_async((1, 1), countdwon=10)


def test_publish_signals_fire_around_the_publish(app: Celery, add: Any) -> None:
    seen: list[tuple[str, Any]] = []

    def before(sender: Any = None, headers: Any = None, **kw: Any) -> None:
        seen.append(("before", headers["id"]))

    def after(sender: Any = None, headers: Any = None, **kw: Any) -> None:
        seen.append(("after", headers["id"]))

    signals.before_task_publish.connect(before)
    signals.after_task_publish.connect(after)
    try:
        result = add.delay(1, 2)
    finally:
        signals.before_task_publish.disconnect(before)
        signals.after_task_publish.disconnect(after)
    assert seen == [("before", result.id), ("after", result.id)]


def test_eta_datetime_naive_is_utc(app: Celery, add: Any) -> None:
    soon = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(seconds=30)
    add.apply_async((1, 1), eta=soon)
    assert app.broker.delayed_count("celery") == 1


def test_routes_set_after_the_first_call_are_used(app: Celery, add: Any) -> None:
    add.delay(1, 1)
    app.conf.task_routes = {add.name: {"queue": "late"}}
    add.delay(2, 2)
    assert len(take_messages(app, "celery")) == 1 and len(take_messages(app, "late")) == 1


def test_result_cls_and_route_name_work_as_in_celery(app: Celery, add: Any) -> None:
    from celeriac import AsyncResult

    class Tracked(AsyncResult[Any]):
        pass

    app.conf.task_routes = {"reports.*": {"queue": "reports"}}
    result = add.apply_async((1, 2), result_cls=Tracked, route_name="reports.monthly")
    assert isinstance(result, Tracked)
    [(message, _)] = take_messages(app, "reports")  # routed as reports.monthly
    assert message.headers["id"] == result.id


def test_kombu_options_are_taken_and_a_foreign_exchange_warns(app: Celery, add: Any) -> None:
    from celeriac.config.conf import NotInEffectWarning

    add.apply_async(
        (1, 1), queue="feeds", exchange="feeds", routing_key="feeds", exchange_type="direct",
        mandatory=True, delivery_mode=2, declare=[], immediate=False, max_retries=3,
    )  # fmt: skip
    assert len(take_messages(app, "feeds")) == 1  # the common Celery form: no warning
    with pytest.warns(NotInEffectWarning, match="exchange='broadcast' is not used"):
        add.apply_async((1, 1), queue="feeds", exchange="broadcast")
    with pytest.raises(TypeError, match=r"router=.* is not supported: route with task_routes"):
        add.apply_async((1, 1), router=object())
