"""``task_annotations`` sets task attributes from the configuration, as in Celery: by task
name, for every task (``'*'``), through an object's ``annotate(task)``, or a list of these."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.config import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import drain
from tests.conftest import take_messages


@pytest.fixture
def make_app() -> Iterator[Any]:
    made: list[Celery] = []

    def make(annotations: Any) -> Celery:
        app = Celery("ann", broker="memory://", backend="cache+memory://",
                     task_annotations=annotations, set_as_current=False)  # fmt: skip
        made.append(app)
        return app

    yield make
    for app in made:  # shared tasks defined later reach every live app: annotate none of them
        app.conf.task_annotations = None
        app.close()


def test_a_mapping_annotates_the_named_task_and_star_every_task(make_app: Any) -> None:
    failures: list[str] = []

    def on_failure(self: Any, exc: BaseException, task_id: str, *rest: Any) -> None:
        failures.append(f"{self.name}: {exc}")

    app = make_app({"ann.add": {"queue": "fast"}, "*": {"on_failure": on_failure}})

    @app.task(name="ann.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="ann.boom")
    def boom() -> None:
        raise ValueError("no")

    add.delay(1, 2)
    assert app.broker.queue_length("fast") == 1 and app.broker.queue_length("celery") == 0
    boom.delay()
    assert drain(app) == 1 and failures == ["ann.boom: no"]


def test_star_wins_over_the_name_where_both_set_an_attribute(make_app: Any) -> None:
    app = make_app({"ann.add": {"priority": 3, "queue": "fast"}, "*": {"priority": 7}})

    @app.task(name="ann.add")
    def add(x: int, y: int) -> int:
        return x + y

    assert (add.priority, add.queue) == (7, "fast")  # Celery applies '*' last


class Slow:
    def annotate(self, task: Any) -> dict[str, Any] | None:
        return {"queue": "slow"} if task.name.endswith(".report") else None


def test_objects_and_import_paths_in_a_list_first_answer_wins(
    make_app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("ann_objects")
    module.Slow = Slow
    monkeypatch.setitem(sys.modules, "ann_objects", module)
    app = make_app(["ann_objects.Slow", {"ann.report": {"queue": "ignored"}}])

    @app.task(name="ann.report")
    def report() -> str:
        return "done"

    report.delay()
    [(message, _)] = take_messages(app, "slow")
    assert message.headers["task"] == "ann.report"


def test_annotations_set_after_the_task_apply_when_the_app_is_finalized() -> None:
    app = Celery("late", broker="memory://", set_as_current=False)

    @app.task(name="late.add")
    def add(x: int, y: int) -> int:
        return x + y

    app.conf.task_annotations = {"late.add": {"rate_limit": "10/s"}}
    app.finalize()
    assert add.rate_limit == "10/s"


def test_bad_annotations_fail_or_warn_clearly(make_app: Any) -> None:
    with pytest.raises(ImproperlyConfigured, match="task_annotations holds 42"):
        make_app([42])  # the app's own tasks are annotated too, so it fails at once
    with pytest.warns(UnknownSettingWarning, match="'rate_limt'.*did you mean 'rate_limit'"):
        app = make_app({"*": {"rate_limt": "1/s"}})

        @app.task(name="ann.two")
        def two() -> None: ...


def log_calls(calls: list[tuple[Any, ...]]) -> Any:
    """An ``'@__call__'`` annotation: wraps each call of the task, recording its arguments."""

    def around(call: Any) -> Any:
        def logged(self: Any, *args: Any, **kwargs: Any) -> Any:
            calls.append((self.name, args, kwargs))
            return call(self, *args, **kwargs)

        return logged

    return around


def test_an_at_call_annotation_wraps_each_call_eagerly(make_app: Any) -> None:
    calls: list[tuple[Any, ...]] = []
    app = make_app({"ann.add": {"@__call__": log_calls(calls)}})

    @app.task(name="ann.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="ann.other")
    def other() -> int:
        return 1

    assert add.apply((2,), {"y": 3}).get() == 5
    assert add(4, 4) == 8 and other() == 1
    assert calls == [("ann.add", (2,), {"y": 3}), ("ann.add", (4, 4), {})]
    assert type(add).__call__.__wrapped__ is type(other).__call__  # the original method


def test_annotate_again_after_the_setting_changed_replaces_the_wrapper(make_app: Any) -> None:
    first: list[tuple[Any, ...]] = []
    second: list[tuple[Any, ...]] = []
    app = make_app({"ann.add": {"@__call__": log_calls(first), "priority": 1}})

    @app.task(name="ann.add")
    def add(x: int, y: int) -> int:
        return x + y

    app.conf.task_annotations = {"ann.add": {"@__call__": log_calls(second), "priority": 5}}
    add.annotate()
    add.annotate()  # applying again does not stack wrappers
    assert add(1, 1) == 2 and add.priority == 5
    assert first == [] and second == [("ann.add", (1, 1), {})]


def test_add_around_wraps_a_method_of_the_class(make_app: Any) -> None:
    app = make_app(None)
    seen: list[str] = []

    @app.task(name="ann.boom", max_retries=0)
    def boom() -> None:
        raise KeyError("k")

    def note_failure(on_failure: Any) -> Any:
        def around(self: Any, exc: BaseException, *rest: Any) -> None:
            seen.append(repr(exc))
            on_failure(self, exc, *rest)

        return around

    type(boom).add_around("on_failure", note_failure)
    boom.delay()
    assert drain(app) == 1 and seen == ["KeyError('k')"]
    with pytest.raises(AttributeError, match="no attribute 'on_failur' to wrap"):
        boom.add_around("on_failur", note_failure)
    with pytest.raises(TypeError, match="is not callable"):
        boom.add_around("on_failure", "note_failure")
    with pytest.raises(TypeError, match="returned None, not a function"):
        boom.add_around("on_failure", lambda original: None)


def test_binding_a_class_based_task_annotates_it(make_app: Any) -> None:
    from celeriac import Task

    calls: list[tuple[Any, ...]] = []
    app = make_app({"ann.Mul": {"@__call__": log_calls(calls), "queue": "maths"}})

    class Mul(Task[..., int]):
        name = "ann.Mul"

        def run(self, x: int, y: int) -> int:
            return x * y

    Mul.bind(app)
    assert Mul.queue == "maths" and Mul()(3, 4) == 12
    assert calls == [("ann.Mul", (3, 4), {})]
