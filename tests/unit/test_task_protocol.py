"""``task_protocol``: 2 works (the default); any other value is refused when the app is
configured, and when a task is sent after a late change, with the fix in the message."""

from __future__ import annotations

import warnings

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from tests.conftest import take_messages

FIX = "remove the task_protocol setting or set it to 2"


def test_protocol_2_is_taken_quietly_and_messages_carry_it() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        app = Celery("p2", broker="memory://", task_protocol=2, set_as_current=False)
        app.send_task("proj.add", (1, 2))
    [(message, _)] = take_messages(app)
    assert message.headers["task"] == "proj.add" and "argsrepr" in message.headers


def test_protocol_1_is_refused_when_the_app_is_configured() -> None:
    app = Celery("p1", broker="memory://", task_protocol=1, set_as_current=False)
    with pytest.raises(ImproperlyConfigured) as caught:
        _ = app.broker
    assert str(caught.value).startswith("task_protocol is 1, but celeriac writes task ")
    assert FIX in str(caught.value)


def test_a_protocol_changed_after_configuration_is_refused_at_the_next_send() -> None:
    app = Celery("late", broker="memory://", set_as_current=False)
    app.send_task("proj.add", (1, 2))
    app.conf.task_protocol = 1
    with pytest.raises(ImproperlyConfigured, match=FIX):
        app.send_task("proj.add", (1, 2))


def test_bad_delivery_modes_and_max_priorities_are_refused() -> None:
    app = Celery("modes", broker="memory://", set_as_current=False)
    with pytest.raises(ImproperlyConfigured, match=r"use 'persistent' .* or 'transient'"):
        app.send_task("proj.add", (1, 2), delivery_mode="durable")
    app.conf.task_default_delivery_mode = 3
    with pytest.raises(ImproperlyConfigured, match="task_default_delivery_mode is 3"):
        app.send_task("proj.add", (1, 2))
    app.send_task("proj.add", (1, 2), delivery_mode="transient")  # the option wins
    high = Celery("high", broker="amqp://h//", task_queue_max_priority=300,
                  set_as_current=False)  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="from 1 to 255"):
        _ = high.broker
    quorum = Celery("q", broker="amqp://h//", task_queue_max_priority=10,
                    task_default_queue_type="quorum", set_as_current=False)  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="quorum queues, which have no priority"):
        _ = quorum.broker
