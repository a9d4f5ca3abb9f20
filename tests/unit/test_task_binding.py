"""How a task is bound to its app, as in Celery: ``Celery(strict_typing=...)``,
``Celery(autofinalize=False)``, the ``on_bound`` and ``shadow_name`` hooks, the request
stack (``push_request``/``pop_request``/``request_stack``), ``app.clock``,
``app.add_defaults``, ``app.loader``, ``app.oid``, ``set_trap``, ``from_config``, and the
``send_events`` and ``resultrepr_maxsize`` task attributes."""

from __future__ import annotations

import asyncio
import sys
import threading
import uuid
from typing import Any

import pytest

import celeriac
from celeriac import Celery, signals, states
from celeriac.contrib.testing.app import set_trap, setup_default_app
from celeriac.testing import start_worker
from celeriac.trace import Outcome, OutcomeKind
from celeriac.worker.execution import outcome_to_wire
from tests.conftest import take_messages


def test_strict_typing_false_turns_the_argument_check_off_by_default() -> None:
    app = Celery("loose", broker="memory://", strict_typing=False, set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(typing=True)
    def checked(x: int) -> int:
        return x

    assert add.typing is False and checked.typing is True
    add.apply_async((1, 2, 3))  # sent as given: the worker's call will fail, as in Celery
    with pytest.raises(TypeError, match="checked"):
        checked.delay(1, 2)
    app.close()


def test_strict_typing_is_on_by_default(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert app.strict_typing is True and add.typing is True
    with pytest.raises(TypeError):
        add.delay(1, 2, 3)


def test_autofinalize_false_refuses_tasks_and_registry_before_finalize() -> None:
    app = Celery("strict", broker="memory://", autofinalize=False, set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    assert app.autofinalize is False
    with pytest.raises(RuntimeError, match="app not finalized"):
        app.tasks  # noqa: B018 - reading the registry is the use being refused
    with pytest.raises(RuntimeError, match=r"call app\.finalize\(\)"):
        add.delay(1, 2)
    with pytest.raises(RuntimeError, match="app not finalized"):
        add.apply((1, 2))
    app.send_task("by.name")  # sending by name needs no registry, as in Celery
    app.finalize()
    assert app.tasks[add.name] is add
    assert add.apply((1, 2)).get() == 3
    app.close()


def test_on_bound_is_called_with_the_app_when_a_task_is_registered(app: Celery) -> None:
    bound: list[tuple[str | None, Celery]] = []

    class Recorded(celeriac.Task[Any, Any]):
        @classmethod
        def on_bound(cls, app: Any) -> None:
            bound.append((cls.name, app))

    @app.task(base=Recorded)
    def job() -> None:
        return None

    class Other(Recorded):
        name = "proj.other"

        def run(self) -> None:
            return None

    app.register_task(Other)
    assert bound == [(job.name, app), ("proj.other", app)]


def test_shadow_name_names_each_call_unless_shadow_is_given(app: Celery) -> None:
    def by_first_argument(task: Any, args: Any, kwargs: Any, options: Any) -> str:
        return f"{task.name}:{args[0]}"

    @app.task(shadow_name=by_first_argument)
    def run_report(kind: str) -> None:
        return None

    @app.task
    def plain() -> None:
        return None

    run_report.delay("sales")
    run_report.apply_async(("hr",), shadow="explicit")
    plain.delay()
    shadows = [message.headers.get("shadow") for message, _ in take_messages(app)]
    assert shadows == [f"{run_report.name}:sales", "explicit", None]


def test_shadow_name_on_a_base_class(app: Celery) -> None:
    class Tenant(celeriac.Task[Any, Any]):
        def shadow_name(self, args: Any, kwargs: Any, options: Any) -> str | None:
            return f"{self.name}[{kwargs['tenant']}]"

    @app.task(base=Tenant)
    def sync(tenant: str) -> None:
        return None

    sync.delay(tenant="acme")
    [(message, _)] = take_messages(app)
    assert message.headers["shadow"] == f"{sync.name}[acme]"


def test_push_request_sets_self_request_for_a_direct_call(app: Celery) -> None:
    @app.task(bind=True)
    def seen(self: Any) -> tuple[Any, ...]:
        return (self.request.id, self.request.retries, self.request.get("tenant"))

    assert seen() == (None, 0, None)
    seen.push_request(id="t1", retries=2, tenant="acme")
    try:
        assert seen() == ("t1", 2, "acme")
        assert seen.request_stack.top is seen.request
        seen.push_request({"retries": 3})  # updates the current request, as in Celery
        assert seen() == ("t1", 3, "acme")
        seen.pop_request()
        assert seen() == ("t1", 2, "acme")
    finally:
        seen.pop_request()
    assert seen() == (None, 0, None)
    assert seen.request_stack.top is None
    seen.pop_request()  # an empty stack: nothing to undo, as Celery's LocalStack


def test_pushed_requests_are_per_thread_and_per_task(app: Celery) -> None:
    @app.task(bind=True)
    def one(self: Any) -> Any:
        return self.request.id

    @app.task(bind=True)
    def two(self: Any) -> Any:
        return self.request.id

    one.push_request(id="main")
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(one()))
    thread.start()
    thread.join()
    assert seen == [None] and one() == "main" and two() is None
    two.pop_request()  # not two's push: left alone
    assert one() == "main"
    one.pop_request()
    assert one() is None


def test_the_request_stack_top_is_the_running_request(app: Celery) -> None:
    @app.task(bind=True)
    def running(self: Any) -> bool:
        return self.request_stack.top is self.request and self.request.id == "r1"

    assert running.apply(task_id="r1").get() is True


def test_app_clock_stamps_the_events_the_app_sends(app: Celery) -> None:
    assert app.clock is app.events.clock
    before = app.clock.value
    with app.events.default_dispatcher() as dispatcher:
        event = dispatcher.send("task-progress", uuid="x")
    assert event is not None and event["clock"] == before + 1 == app.clock.value
    assert app.clock.adjust(100) == 101  # what a received event does to it


def test_push_request_in_asyncio_tasks_side_by_side(app: Celery) -> None:
    @app.task(bind=True)
    def whose(self: Any) -> Any:
        return self.request.id

    async def one(task_id: str) -> Any:
        whose.push_request(id=task_id)
        await asyncio.sleep(0)  # let the other coroutine push its own
        try:
            return whose()
        finally:
            whose.pop_request()

    async def both() -> list[Any]:
        return list(await asyncio.gather(one("a"), one("b")))

    assert asyncio.run(both()) == ["a", "b"]


def test_add_defaults_sit_under_the_values_set() -> None:
    app = Celery("defaults", broker="memory://", set_as_current=False)
    assert app.conf.task_default_queue == "celery"  # a built-in default read first
    app.conf.result_expires = 60
    app.add_defaults({"task_default_queue": "jobs", "result_expires": 5})
    assert app.conf.task_default_queue == "jobs"  # over the built-in default
    assert app.conf.result_expires == 60  # under the value set
    app.add_defaults({"task_default_queue": "later"})  # over earlier defaults
    assert app.conf.task_default_queue == "later"
    app.conf.task_default_queue = "mine"
    assert app.conf.task_default_queue == "mine"
    del app.conf["task_default_queue"]
    assert app.conf.task_default_queue == "later"
    app.close()


def test_add_defaults_declares_an_extension_setting(recwarn: pytest.WarningsRecorder) -> None:
    app = Celery("ext", broker="memory://", set_as_current=False)

    class ExtensionDefaults:
        myext_region = "eu"
        myext_retries = 3

    app.add_defaults(ExtensionDefaults)
    assert "myext_region" in app.conf and app.conf.myext_retries == 3
    app.conf.update(myext_region="us")  # a declared name: no unknown-setting warning
    assert app.conf.myext_region == "us" and not recwarn.list
    with pytest.warns(UserWarning, match="unknown setting 'myext_regoin'"):
        app.conf.myext_regoin = "x"  # still warned: not declared
    with pytest.raises(TypeError, match="config_from_object"):
        app.add_defaults("proj.defaults")
    app.close()


def test_add_defaults_of_a_callable_is_read_on_first_use() -> None:
    app = Celery("lazy", broker="memory://", set_as_current=False)
    calls: list[str] = []

    def defaults() -> dict[str, Any]:
        calls.append("read")
        return {"myext_flag": True, "task_default_priority": 4}

    app.add_defaults(defaults)
    assert calls == []
    assert app.conf.myext_flag is True and app.conf.task_default_priority == 4
    assert app.conf.myext_flag is True and calls == ["read"]
    app.close()


def test_a_base_class_reads_its_own_from_config_pairs_when_bound(app: Celery) -> None:
    app.add_defaults({"proj_region": "eu", "proj_acks": True})

    class Regional(celeriac.Task[Any, Any]):
        region: str | None = None
        from_config = (
            *celeriac.Task.from_config,
            ("region", "proj_region"),
            ("acks_late", "proj_acks"),  # a built-in attribute from a setting of one's own
        )

    @app.task(base=Regional)
    def here() -> None:
        return None

    @app.task(base=Regional, region="us")
    def there() -> None:
        return None

    assert (here.region, there.region) == ("eu", "us")
    assert here.resolve("acks_late") is True
    assert ("serializer", "task_serializer") in celeriac.Task.from_config


def test_send_events_false_and_resultrepr_maxsize_in_events_and_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = Celery("evt", broker="memory://", backend="cache+memory://", set_as_current=False)

    @app.task(send_events=False)
    def quiet() -> str:
        return "hush"

    @app.task(resultrepr_maxsize=12)
    def loud() -> str:
        return "x" * 100

    receiver = app.events.Receiver(app, history=True)
    with caplog.at_level("INFO"), start_worker(app, hostname="ev@unit", send_events=True):
        first, second = quiet.delay(), loud.delay()
        assert (first.get(timeout=5), second.get(timeout=5)) == ("hush", "x" * 100)
        seen: list[dict[str, Any]] = []
        for event in receiver.itercapture(timeout=5, wakeup=False):
            seen.append(event)
            if event["type"] == "task-succeeded" and event["uuid"] == second.id:
                break
    assert not [e for e in seen if e.get("uuid") == first.id]  # none of quiet's events
    [done] = [e for e in seen if e["type"] == "task-succeeded"]
    assert done["result"] == "'" + "x" * 8 + "..." and len(done["result"]) == 12
    assert {"task-received", "task-started"} <= {e["type"] for e in seen}
    logged = [r.getMessage() for r in caplog.records if "succeeded in" in r.getMessage()]
    assert any(line.endswith(": hush") for line in logged)
    assert any(line.endswith(": " + "x" * 9 + "...") for line in logged)
    app.close()


def test_a_prefork_child_cuts_the_result_repr_at_the_tasks_size() -> None:
    outcome = Outcome(OutcomeKind.SUCCESS, states.SUCCESS, retval=list(range(100)))
    assert outcome_to_wire(outcome, 10)["retval"] == "[0, 1, ..."
    assert len(outcome_to_wire(outcome)["retval"]) == len(repr(list(range(100))))


@pytest.fixture
def project(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A package ``ldrproj`` with ``jobs`` (in ``imports``), ``extra`` (in ``include``)
    and ``orders.tasks`` (for autodiscovery), each defining a task of the current app."""
    package = tmp_path / "ldrproj"
    (package / "orders").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "orders" / "__init__.py").write_text("")
    task = "from celeriac import shared_task\n\n@shared_task\ndef {0}():\n    return '{0}'\n"
    (package / "jobs.py").write_text(task.format("job"))
    (package / "extra.py").write_text(task.format("extra"))
    (package / "orders" / "tasks.py").write_text(task.format("order"))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield package
    for name in [n for n in sys.modules if n.startswith("ldrproj")]:
        del sys.modules[name]


def test_app_loader_imports_the_default_modules(project: Any) -> None:
    app = Celery("ldr", broker="memory://", imports=["ldrproj.jobs"], include=["ldrproj.extra"])
    sent: list[Any] = []

    def record(sender: Any, **kwargs: Any) -> None:
        sent.append(sender)

    signals.import_modules.connect(record, weak=False)
    try:
        modules = app.loader.import_default_modules()
    finally:
        signals.import_modules.disconnect(record)
    assert [m.__name__ for m in modules] == ["ldrproj.jobs", "ldrproj.extra"]
    assert app.loader.default_modules == ("ldrproj.jobs", "ldrproj.extra")
    assert sent == [app] and app.loader.task_modules == {"ldrproj.jobs", "ldrproj.extra"}
    assert {"ldrproj.jobs.job", "ldrproj.extra.extra"} <= set(app._tasks)
    app.loader.autodiscover_tasks(["ldrproj.orders", "ldrproj"])  # ldrproj has no tasks
    assert "ldrproj.orders.tasks" in app.loader.task_modules
    assert "ldrproj.tasks" not in app.loader.task_modules
    assert app.loader.import_task_module("ldrproj.orders").__name__ == "ldrproj.orders"
    assert app.loader.now().tzinfo is not None and app.loader.now(utc=False).tzinfo is None
    assert app.loader is app.loader and app.loader.app is app
    app.close()


def test_app_loader_raises_an_import_modules_receivers_error() -> None:
    app = Celery("ldr2", broker="memory://", set_as_current=False)

    def broken(sender: Any, **kwargs: Any) -> None:
        raise LookupError("receiver failed")

    signals.import_modules.connect(broken, weak=False)
    try:
        with pytest.raises(LookupError, match="receiver failed"):
            app.loader.import_default_modules()
    finally:
        signals.import_modules.disconnect(broken)
    app.close()


def test_oid_and_thread_oid_are_stable_unique_ids(app: Celery) -> None:
    other = Celery("other", broker="memory://", set_as_current=False)
    assert uuid.UUID(app.oid) and app.oid == app.oid != other.oid
    seen: list[str] = []
    thread = threading.Thread(target=lambda: seen.append(app.thread_oid))
    thread.start()
    thread.join()
    assert app.thread_oid == app.thread_oid != seen[0]
    assert len({app.oid, app.thread_oid, seen[0], other.thread_oid}) == 4
    other.close()


def test_set_trap_fails_any_use_of_the_current_app(app: Celery) -> None:
    app.set_current()
    with set_trap(app), pytest.raises(RuntimeError, match="current app"):
        celeriac.current_app.conf  # noqa: B018 - the use being refused
    assert celeriac.current_app.conf is app.conf
    with setup_default_app(app, use_trap=True), pytest.raises(RuntimeError, match="current"):
        celeriac.current_app.tasks  # noqa: B018
    assert celeriac.current_app.main == app.main


def test_wrapped_is_the_function_and_decorating_it_again_is_no_duplicate(app: Celery) -> None:
    def add(x: int, y: int) -> int:
        return x + y

    def attempt(self: Any, n: int) -> int:
        return n

    task = app.task(add)
    assert task.__wrapped__(2, 3) == 5  # the function itself, as in Celery
    bound = app.task(bind=True)(attempt)
    assert bound.__wrapped__(7) == 7  # bind=True: bound to the task, as in Celery
    # The same function again returns the task, without a duplicate-name warning.
    assert app.task(add) is task and app.task(bind=True)(attempt) is bound


class _Slow:
    def annotate(self, task: Any) -> dict[str, Any] | None:
        return {"rate_limit": "1/s"} if task.name.endswith("slow") else None


def test_app_annotations_are_the_prepared_task_annotations(app: Celery) -> None:
    assert app.annotations == []
    app.conf.task_annotations = [{"proj.add": {"max_retries": 9}, "*": {"acks_late": True}}]
    [by_name] = app.annotations

    @app.task(name="proj.add")
    def add() -> None:
        return None

    assert by_name.annotate(add) == {"max_retries": 9}
    assert by_name.annotate_any() == {"acks_late": True}
    app.conf.task_annotations = _Slow()
    [custom] = app.annotations
    assert isinstance(custom, _Slow) and add.max_retries == 9


def test_task_bind_binds_a_class_to_an_app_as_celery(app: Celery) -> None:
    seen: list[Any] = []

    class Standalone(celeriac.Task[Any, Any]):
        name = "proj.standalone"
        typing = None

        @classmethod
        def on_bound(cls, app: Any) -> None:
            seen.append(app)

        def run(self) -> int:
            return 7

    strict = Celery("strict", broker="memory://", strict_typing=False, set_as_current=False)
    assert Standalone.bind(strict) is strict
    assert Standalone._app is strict and Standalone().app is strict
    assert Standalone.typing is False and seen == [strict]
