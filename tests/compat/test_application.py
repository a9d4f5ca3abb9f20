"""User guide, "Application": the app instance, its main name, configuration from a module,
an object and an environment variable, laziness, and custom task classes — a project
written as that chapter teaches, run by a real worker started from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os

from celeriac import Celery, Task, shared_task

configured = []


class LoggedTask(Task):
    # A custom base class: every call of its tasks goes through __call__.
    def __call__(self, *args, **kwargs):
        result = super().__call__(*args, **kwargs)
        return {"task": self.name, "result": result}


app = Celery("guide_app", task_cls=LoggedTask)
app.config_from_object("celeryconfig")


@app.on_after_configure.connect
def remember(sender, **kwargs):
    configured.append(sender.main)


@app.task
def add(x, y):
    return x + y


@app.task(name="custom.name.mul")
def mul(x, y):
    return x * y


class Plain(Task):
    pass


@app.task(base=Plain)
def plain(x):
    return x


@shared_task
def shared_echo(value):
    return value
"""


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_app", PROJECT) as guide:
        worker = guide.worker("-P", "threads", "-c", "4")
        try:
            yield guide
        finally:
            assert worker.stop() == 0, worker.text


def test_task_names_come_from_the_module_and_the_name_option(guide: Guide) -> None:
    proj = guide.module
    assert proj.add.name == "guide_app.add"
    assert proj.mul.name == "custom.name.mul"
    assert "guide_app.add" in proj.app.tasks
    assert proj.app.tasks["custom.name.mul"] is proj.mul


def test_the_main_name_is_used_for_tasks_of_a_script(tmp_path: os.PathLike[str]) -> None:
    script = "from celeriac import Celery\napp = Celery('myapp')\n\n@app.task\ndef f(): pass\n"
    script += "print(f.name)\n"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "myapp.f"  # run as __main__: named after the app's main


def test_configuration_from_a_module_reaches_the_worker(guide: Guide) -> None:
    proj = guide.module
    assert proj.app.conf.broker_url == guide.broker
    assert proj.app.conf.result_backend.startswith("redis://")
    assert proj.add.delay(2, 3).get(timeout=20) == {"task": "guide_app.add", "result": 5}
    assert proj.mul.delay(4, 5).get(timeout=20) == {"task": "custom.name.mul", "result": 20}


def test_the_app_task_class_and_a_base_option(guide: Guide) -> None:
    proj = guide.module
    assert isinstance(proj.add, proj.LoggedTask)
    assert isinstance(proj.plain, proj.Plain)
    assert proj.plain.delay(7).get(timeout=20) == 7  # its own base: no wrapping


def test_shared_tasks_bind_to_the_app_that_runs_them(guide: Guide) -> None:
    proj = guide.module
    assert proj.shared_echo.delay("hello").get(timeout=20) == {
        "task": "guide_app.shared_echo",
        "result": "hello",
    }


def test_on_after_configure_fires_once_the_configuration_is_read(guide: Guide) -> None:
    proj = guide.module
    assert proj.app.conf.result_backend  # reading configuration configures the app
    assert proj.configured == ["guide_app"]


def test_configuration_from_an_object_and_from_an_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]
) -> None:
    from celeriac import Celery

    class Config:
        task_default_queue = "from-object"
        result_expires = 3600

    app = Celery("objects")
    app.config_from_object(Config)
    assert app.conf.task_default_queue == "from-object"
    assert app.conf.result_expires == 3600
    app.close()

    settings = os.path.join(tmp_path, "envsettings.py")
    with open(settings, "w") as file:
        file.write("task_default_queue = 'from-env'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("CELERY_CONFIG_MODULE", "envsettings")
    app = Celery("envs")
    app.config_from_envvar("CELERY_CONFIG_MODULE")
    assert app.conf.task_default_queue == "from-env"
    app.close()


def test_the_app_is_lazy_until_finalized() -> None:
    from celeriac import Celery

    app = Celery("lazy", broker="redis://127.0.0.1:1/0")  # nothing listens: never dialled
    seen = []

    @app.on_after_finalize.connect
    def finalized(sender: object, **kwargs: object) -> None:
        seen.append(sender)

    @app.task
    def later() -> int:
        return 1

    assert seen == []
    app.finalize()
    assert seen == [app]
    assert app.tasks[later.name] is later
    app.close()
