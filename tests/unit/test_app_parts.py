"""The app's part classes (``amqp_cls``, ``control_cls``, ... and the matching
``Celery(...)`` arguments) and ``subclass_with_self``: each builds what ``app.<part>`` is,
as Celery's do."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from celeriac import Celery
from celeriac.app.amqp import AMQP
from celeriac.app.control import Control
from celeriac.app.loader import AppLoader
from celeriac.app.log import Logging
from celeriac.app.registry import TaskRegistry
from celeriac.events import Events
from celeriac.exceptions import ImproperlyConfigured
from celeriac.results.memory import MemoryBackend


class MyControl(Control):
    pass


class MyEvents(Events):
    pass


class MyLog(Logging):
    pass


class MyAMQP(AMQP):
    pass


class MyLoader(AppLoader):
    pass


class MyRegistry(TaskRegistry):
    pass


class RecordingBackend(MemoryBackend):
    """A store of one's own, built as Celery builds ``backend_cls`` (``app=``, ``url=``)."""

    def __init__(self, app: Any, url: str | None = None, **kwargs: Any) -> None:
        super().__init__(serializer=app.conf.result_serializer)
        self.app, self.url = app, url


class Thing:
    """An extension's class that reads the app from ``app``."""

    app: Any = None

    def __init__(self, value: int) -> None:
        self.value = value

    def __reduce_args__(self) -> tuple[Any, ...]:
        return (self.value,)


def test_class_attributes_of_an_app_subclass_build_its_parts() -> None:
    class MyApp(Celery):
        amqp_cls = f"{__name__}:MyAMQP"  # a path, as Celery projects write them
        control_cls = MyControl
        events_cls = f"{__name__}.MyEvents"
        log_cls = MyLog
        loader_cls = f"{__name__}:MyLoader"
        registry_cls = MyRegistry
        backend_cls = f"{__name__}:RecordingBackend"

    app = MyApp("parts", broker="memory://", set_as_current=False)
    try:
        assert type(app.amqp) is MyAMQP and app.amqp.app is app
        assert type(app.control) is MyControl and app.control.app is app
        assert type(app.events) is MyEvents and app.events.app is app
        assert type(app.log) is MyLog and app.log.app is app
        assert type(app.loader) is MyLoader and app.loader.app is app
        assert type(app.tasks) is MyRegistry

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        assert app.tasks[add.name] is add
        backend = app.backend
        assert isinstance(backend, RecordingBackend) and backend.app is app
        assert backend.url is None  # it reads its settings from app.conf
        assert add.apply((2, 3)).get() == 5
    finally:
        app.close()


def test_constructor_arguments_take_over_the_class_attributes() -> None:
    registry = MyRegistry()
    app = Celery(
        "kwargs", broker="memory://", set_as_current=False, control=MyControl,
        events=MyEvents, log=f"{__name__}:MyLog", amqp=MyAMQP, loader="app", tasks=registry,
    )  # fmt: skip
    assert app.control_cls is MyControl and type(app.control) is MyControl
    assert type(app.events) is MyEvents and type(app.log) is MyLog
    assert type(app.amqp) is MyAMQP and type(app.loader) is AppLoader
    assert app._tasks is registry  # a registry is used as it is
    assert type(Celery("d", broker="memory://", set_as_current=False).control) is Control


def test_tasks_as_a_mapping_fill_a_new_registry() -> None:
    app = Celery("seeded", broker="memory://", set_as_current=False, tasks={"x.y": 1})
    assert type(app._tasks) is TaskRegistry and app._tasks["x.y"] == 1


def test_celery_loader_environment_variable_names_the_loader(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CELERY_LOADER", f"{__name__}:MyLoader")
    app = Celery("env", broker="memory://", set_as_current=False)
    assert type(app.loader) is MyLoader


def test_the_loader_option_names_the_loader_of_the_app_it_loads(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from celeriac.cli import cli

    (tmp_path / "ldrapp.py").write_text(
        "from celeriac import Celery\napp = Celery('ldrapp', broker='memory://')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    # The option sets CELERY_LOADER: recorded as unset first, so it is removed afterwards.
    monkeypatch.setenv("CELERY_LOADER", "")
    monkeypatch.delenv("CELERY_LOADER")
    monkeypatch.delitem(__import__("sys").modules, "ldrapp", raising=False)
    done = CliRunner().invoke(cli, ["--loader", f"{__name__}:MyLoader", "-A", "ldrapp", "report"])
    assert done.exit_code == 0, done.output
    import ldrapp

    assert type(ldrapp.app.loader) is MyLoader


def test_bad_part_classes_are_refused_with_the_fix() -> None:
    app = Celery("bad", broker="memory://", set_as_current=False, control="nowhere.mod:Nope")
    with pytest.raises(ImproperlyConfigured, match=r"control_cls 'nowhere\.mod:Nope' cannot"):
        _ = app.control
    with pytest.raises(ImproperlyConfigured, match="Celery's celeryconfig-module loader"):
        _ = Celery("d", broker="memory://", set_as_current=False, loader="default").loader
    with pytest.raises(ImproperlyConfigured, match=r"subclass of celeriac\.app\.registry"):

        class BadRegistry(Celery):
            registry_cls = dict

        BadRegistry("r", broker="memory://", set_as_current=False)

    class NotAStore(Celery):
        backend_cls = dict  # builds (app=, url=), but is no result store

    with pytest.raises(ImproperlyConfigured, match=r"not a celeriac\.results\.base\.Result"):
        _ = NotAStore("s", broker="memory://", set_as_current=False).backend


def test_subclass_with_self_binds_the_app_and_pickles_through_the_current_app(
    app: Celery,
) -> None:
    Bound = app.subclass_with_self(Thing, reverse="Thing")
    assert Bound.app is app and issubclass(Bound, Thing) and Bound.__name__ == "Thing"
    assert Bound.__doc__ == Thing.__doc__ and Bound.__module__ == __name__
    app.Thing = Bound  # where ``reverse`` finds it
    copy = pickle.loads(pickle.dumps(Bound(7)))
    assert type(copy) is Bound and copy.value == 7
    named = app.subclass_with_self(f"{__name__}:Thing", name="Other", attribute="owner",
                                   keep_reduce=True, extra=1)  # fmt: skip
    assert named.__name__ == "Other" and named.owner is app and named.extra == 1
    assert "__reduce__" not in vars(named)


def test_create_task_cls_is_a_new_base_bound_to_the_app(app: Celery) -> None:
    made = app.create_task_cls()
    assert made._app is app and made is not app.create_task_cls()
    assert issubclass(app.Task, app.task_cls) and app.Task._app is app
