"""The settings a task call reads are taken once per change of the configuration: a change
made between two calls, in any of the ways a setting can change, is in effect for the
second call."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.exceptions import AlwaysEagerIgnored
from tests.conftest import take_messages


def make_app() -> Celery:
    app = Celery("sends", broker="memory://", set_as_current=False)

    @app.task(name="proj.add")
    def add(x: int, y: int) -> int:
        return x + y

    return app


def test_a_setting_written_between_calls_is_in_effect_for_the_next() -> None:
    app = make_app()
    app.send_task("proj.add", (1, 2))
    app.conf.task_serializer = "pickle"
    app.conf.task_default_priority = 7
    app.send_task("proj.add", (3, 4))
    (first, first_priority), (second, second_priority) = sorted(
        take_messages(app), key=lambda taken: taken[1]
    )
    assert (first.content_type, first_priority) == ("application/json", 0)
    assert (second.content_type, second_priority) == ("application/x-python-serialize", 7)


def test_defaults_added_later_by_a_callable_are_in_effect_for_the_next_call() -> None:
    app = make_app()
    app.send_task("proj.add", (1, 2))
    app.conf.add_defaults(lambda: {"task_default_priority": 4})
    app.send_task("proj.add", (3, 4))
    assert sorted(priority for _, priority in take_messages(app)) == [0, 4]


def test_always_eager_switched_on_after_a_sent_call_runs_the_next_call_here() -> None:
    app = make_app()
    add = app.tasks["proj.add"]
    add.delay(1, 2)
    app.conf.task_always_eager = True
    assert add.delay(3, 4).get() == 7
    with pytest.warns(AlwaysEagerIgnored):
        app.send_task("proj.add", (5, 6))
    assert len(take_messages(app)) == 2  # the first delay() and the send_task()
