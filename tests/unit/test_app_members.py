"""Celery's smaller app, task and package members a project reaches for: each does what
Celery's does."""

from __future__ import annotations

import datetime as dt
from typing import Any

import celeriac
from celeriac import Celery, ResultSet
from celeriac.exceptions import MaxRetriesExceededError


def test_configured_and_the_subclass_hooks_run_once() -> None:
    calls: list[str] = []

    class MyApp(Celery):
        def on_init(self) -> None:
            calls.append("init")

        def on_configure(self) -> None:
            calls.append(f"configure {self.conf.task_default_queue}")

    app = MyApp("hooks", broker="memory://", task_default_queue="jobs")
    assert calls == ["init"] and not app.configured
    app.finalize()  # the first real use reads the configuration
    assert app.configured and calls == ["init", "configure jobs"]
    app.finalize()
    assert calls == ["init", "configure jobs"]
    app.close()


def test_constructor_choices_stay_readable(app: Celery) -> None:
    class Base(celeriac.Task[Any, Any]):
        pass

    other = Celery("choices", broker="memory://", set_as_current=False, task_cls=Base,
                   namespace="CELERY")  # fmt: skip
    assert other.task_cls is Base and other.set_as_current is False
    assert other.namespace == "CELERY"
    other.close()


def test_current_task_either_and_result_set(app: Celery) -> None:
    seen: list[Any] = []

    @app.task
    def probe() -> None:
        seen.append(app.current_task)

    probe.apply()
    assert seen == [probe] and app.current_task is None
    app.conf.task_default_queue = "fallback"
    assert app.either("task_default_queue", None, "given") == "given"
    assert app.either("task_default_queue", None) == "fallback"
    results = app.ResultSet([app.AsyncResult("a"), app.AsyncResult("b")])
    assert isinstance(results, ResultSet) and results.app is app and len(results) == 2


def test_time_zone_members(app: Celery) -> None:
    assert app.timezone == dt.timezone.utc and app.uses_utc_timezone()
    app.conf.timezone = "Europe/Paris"
    assert str(app.timezone) == "Europe/Paris" and not app.uses_utc_timezone()


def test_set_default_and_the_platform_flags(app: Celery) -> None:
    other = Celery("other", broker="memory://")
    app.set_default()
    assert celeriac.current_app.main == "t"
    assert isinstance(Celery.IS_WINDOWS, bool) and isinstance(Celery.SYSTEM, str)
    other.close()


def test_task_class_handles_and_the_version_data(app: Celery) -> None:
    @app.task(bind=True, max_retries=0)
    def gives_up(self: Any) -> str:
        try:
            raise self.retry(exc=KeyError("x"))
        except self.MaxRetriesExceededError:
            return "gave up"

    assert gives_up.apply().get() == "gave up"
    assert gives_up.MaxRetriesExceededError is MaxRetriesExceededError
    assert gives_up.subtask_from_request == gives_up.signature_from_request
    assert celeriac.VERSION[:3] == tuple(int(n) for n in celeriac.__version__.split(".")[:3])
    assert celeriac.VERSION_BANNER.startswith(celeriac.__version__)
    assert "celeriac" in celeriac.bugreport(app)


def test_select_queues_narrows_what_a_worker_consumes(app: Celery) -> None:
    app.conf.task_queues = ["celery", "images", "video"]
    app.select_queues(["images"])
    assert list(app.amqp.queues.consume_from) == ["images"]
    app.select_queues(None)  # as in Celery: no names, no change
    assert list(app.amqp.queues.consume_from) == ["images"]
