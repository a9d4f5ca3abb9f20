"""Defining tasks: decorators, names, bind, bases, shared tasks, registry, autodiscovery."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery, Task, shared_task
from celeriac.exceptions import NotRegistered


def test_bare_decorator_names_the_task_module_dot_function(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert add.name == f"{__name__}.add"
    assert app.tasks[add.name] is add
    assert add(2, 3) == 5  # calling the task runs the function here
    assert add.__name__ == "add"


def test_decorator_options_become_task_attributes(app: Celery) -> None:
    @app.task(name="custom.name", max_retries=7, rate_limit="10/m", ignore_result=True)
    def job() -> None:
        return None

    assert job.name == "custom.name"
    assert (job.max_retries, job.rate_limit, job.ignore_result) == (7, "10/m", True)
    assert app.tasks["custom.name"] is job


def test_bind_passes_the_task_as_self(app: Celery) -> None:
    @app.task(bind=True)
    def whoami(self: Task[Any, Any]) -> tuple[str | None, str | None]:
        return self.name, self.request.id

    result = whoami.apply(task_id="fixed-id")
    assert result.get() == (whoami.name, "fixed-id")


def test_custom_base_class_supplies_shared_behaviour(app: Celery) -> None:
    seen: list[str] = []

    class AuditedTask(Task[Any, Any]):
        def on_success(self, retval: Any, task_id: Any, args: Any, kwargs: Any) -> None:
            seen.append(f"{self.name}:{retval}")

    @app.task(base=AuditedTask)
    def double(x: int) -> int:
        return x * 2

    assert isinstance(double, AuditedTask)
    double.apply((21,))
    assert seen == [f"{double.name}:42"]


def test_app_task_base_class_is_bound_to_the_app(app: Celery) -> None:
    class Reporter(app.Task):
        name = "reports.make"

        def run(self, report_id: int) -> str:
            return f"report-{report_id}"

    task = app.register_task(Reporter())
    assert app.tasks["reports.make"] is task
    assert task.app is app
    assert task.apply((3,)).get() == "report-3"


def test_class_based_task_without_run_fails_clearly(app: Celery) -> None:
    class Empty(app.Task):
        name = "empty.task"

    task = app.register_task(Empty)
    result = task.apply()
    assert result.state == "FAILURE"
    assert "must define run()" in str(result.result)


def test_unknown_task_name_says_how_to_register_it(app: Celery) -> None:
    @app.task
    def send_email() -> None:
        return None

    with pytest.raises(NotRegistered) as info:
        app.tasks[f"{__name__}.send_emial"]
    assert "Did you mean" in str(info.value) and "autodiscover_tasks" in str(info.value)


def test_shared_task_registers_with_every_app_and_follows_current_app() -> None:
    @shared_task
    def ping() -> str:
        return "pong"

    first = Celery("first", broker="memory://")
    second = Celery("second", broker="memory://")
    assert ping.name in first.tasks and ping.name in second.tasks
    assert first.tasks[ping.name] is not second.tasks[ping.name]
    first.set_current()
    assert ping.app is first
    assert ping.apply().get() == "pong"


def test_shared_task_with_options(app: Celery) -> None:
    @shared_task(bind=True, max_retries=2)
    def bound(self: Task[Any, Any]) -> int | None:
        return self.max_retries

    assert bound.apply().get() == 2


def test_autodiscover_imports_package_tasks_modules(app: Celery, tmp_path: Path) -> None:
    package = tmp_path / "discoverable_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(
        textwrap.dedent(
            """
            from celeriac import shared_task

            @shared_task
            def found():
                return "found"
            """
        )
    )
    (tmp_path / "no_tasks_pkg").mkdir()
    (tmp_path / "no_tasks_pkg" / "__init__.py").write_text("")
    sys.path.insert(0, str(tmp_path))
    try:
        app.autodiscover_tasks(["discoverable_pkg", "no_tasks_pkg"])
        assert "discoverable_pkg.tasks.found" in app.tasks
    finally:
        sys.path.remove(str(tmp_path))
        for name in ("discoverable_pkg", "discoverable_pkg.tasks", "no_tasks_pkg"):
            sys.modules.pop(name, None)


def test_include_modules_are_imported_at_finalize(tmp_path: Path) -> None:
    (tmp_path / "included_tasks_mod.py").write_text(
        "from celeriac import shared_task\n\n@shared_task\ndef inc():\n    return 1\n"
    )
    sys.path.insert(0, str(tmp_path))
    try:
        app = Celery("inc", broker="memory://", include=["included_tasks_mod"])
        assert "included_tasks_mod.inc" in app.tasks
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("included_tasks_mod", None)


def test_hooks_run_in_order(app: Celery) -> None:
    calls: list[str] = []

    class Hooked(Task[Any, Any]):
        def before_start(self, task_id: Any, args: Any, kwargs: Any) -> None:
            calls.append("before_start")

        def on_failure(self, exc: Any, task_id: Any, args: Any, kwargs: Any, einfo: Any) -> None:
            calls.append(f"on_failure:{type(exc).__name__}:{'ValueError' in einfo.traceback}")

        def after_return(self, status: str, *rest: Any) -> None:
            calls.append(f"after_return:{status}")

    @app.task(base=Hooked)
    def boom() -> None:
        raise ValueError("no")

    boom.apply()
    assert calls == ["before_start", "on_failure:ValueError:True", "after_return:FAILURE"]


def test_request_outside_a_task_is_called_directly(app: Celery) -> None:
    @app.task(bind=True)
    def info(self: Task[Any, Any]) -> bool:
        return self.request.called_directly

    assert info() is True
    assert info.apply().get() is False


def test_autodiscover_of_a_misspelt_package_fails_loudly(app: Celery) -> None:
    app.autodiscover_tasks(["no_such_package_celeriac_xyz"])
    with pytest.raises(ModuleNotFoundError, match="no_such_package_celeriac_xyz"):
        _ = app.tasks


def test_a_misspelt_task_option_is_refused_with_the_attribute_meant(app: Celery) -> None:
    with pytest.raises(TypeError, match=r"unknown option 'task_time_limit'.*'time_limit'"):

        @app.task(task_time_limit=60)  # a common mistake in Celery code; Celery ignores it
        def report() -> None:
            return None

    with pytest.raises(TypeError, match=r"unknown option 'retrys'.*did you mean 'retry_kwargs'"):

        @app.task(retrys=3)
        def flaky() -> None:
            return None

    assert "tests.unit.test_tasks.report" not in app.tasks  # nothing half-registered


def test_a_custom_base_declares_its_own_task_options(app: Celery) -> None:
    class Audited(app.Task):  # app.Task is a property
        audit_channel: str | None = None

    @app.task(base=Audited, audit_channel="billing")
    def charge() -> None:
        return None

    assert charge.audit_channel == "billing"
    with pytest.raises(TypeError, match=r"'audit_chanel'.*did you mean 'audit_channel'"):

        @app.task(base=Audited, audit_chanel="billing")
        def refund() -> None:
            return None


def test_a_rate_limit_that_cannot_work_fails_at_definition(app: Celery) -> None:
    with pytest.raises(ValueError, match="'N/s', 'N/m', 'N/h'"):

        @app.task(rate_limit="10/d")
        def daily() -> None:
            return None

    with pytest.raises(ValueError, match="rate_limit_scope 'clustr'"):

        @app.task(rate_limit="1/s", rate_limit_scope="clustr")
        def typo() -> None:
            return None
