"""Print Celery's public surface as JSON: run with the python of a venv that has Celery.

Standalone on purpose (no celeriac import): ``scripts/gen_compat_doc.py`` runs it with
Celery's interpreter and caches the output in docs/data/celery-5.7-surface.json.

    /path/to/celery-venv/bin/python scripts/compat_celery_surface.py > surface.json

Public means no leading underscore; members every object has (``object``'s, and ``dict``'s
for the dict-based signatures) are left out. Class members are read from the class and
from one instance, so attributes set in ``__init__`` count too.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
import pkgutil
import sys
from typing import Any

# Import paths that Celery's documentation tells users to write (beyond the groups).
DOCUMENTED_PATHS = [
    "celery.utils.log.get_task_logger",
    "celery.utils.log.get_logger",
    "celery.app.log.TaskFormatter",
    "celery._state.get_current_task",
    "celery._state.get_current_app",
    "celery.app.task.Task",
    "celery.app.task.Context",
    "celery.result.AsyncResult",
    "celery.result.EagerResult",
    "celery.result.GroupResult",
    "celery.result.ResultSet",
    "celery.result.allow_join_result",
    "celery.result.result_from_tuple",
    "celery.canvas.Signature",
    "celery.canvas.StampingVisitor",
    "celery.schedules.crontab",
    "celery.schedules.schedule",
    "celery.schedules.solar",
    "celery.beat.Scheduler",
    "celery.beat.PersistentScheduler",
    "celery.bootsteps.Step",
    "celery.bootsteps.StartStopStep",
    "celery.bootsteps.ConsumerStep",
    "celery.worker.request.Request",
    "celery.worker.control.Panel",
    "celery.events.EventReceiver",
    "celery.events.state.State",
    "celery.app.control.Control",
    "celery.app.control.Inspect",
    "celery.contrib.abortable.AbortableTask",
    "celery.contrib.abortable.AbortableAsyncResult",
    "celery.contrib.django.task.DjangoTask",
    "celery.contrib.rdb.set_trace",
    "celery.contrib.migrate.migrate_tasks",
    "celery.contrib.sphinx",
]


def public(names: Any) -> list[str]:
    return sorted({n for n in names if not n.startswith("_")})


def members(cls: type, instance: Any = None, *, minus: type | None = None) -> list[str]:
    """Public members of ``cls`` and ``instance``, without those of ``object`` (of ``dict``
    for the dict-based signatures) or of ``minus``."""
    names = set(dir(cls)) | (set(dir(instance)) if instance is not None else set())
    names -= set(dir(dict)) if issubclass(cls, dict) else set(dir(object))
    if minus is not None:
        names -= set(dir(minus))
    return public(names)


def settings() -> list[str]:
    from celery.app import defaults

    return sorted(name for name, _ in defaults.flatten(defaults.NAMESPACES))


def cli_commands() -> list[str]:
    """Commands, subcommands of groups, and the actions of ``inspect`` and ``control``."""
    import click
    from celery.bin.celery import celery as group
    from celery.worker.control import Panel

    names = []
    for name, command in group.commands.items():
        names.append(name)
        if isinstance(command, click.Group):
            names += [f"{name} {sub}" for sub in command.commands]
    for action, meta in Panel.meta.items():
        names.append(f"{meta.type} {action}")
    return sorted(names)


def option_name(option: Any) -> str:
    """An option by its first long name (``--concurrency``), else its first name."""
    names = [*option.opts, *option.secondary_opts]
    return next((n for n in names if n.startswith("--")), names[0])


def cli_options() -> list[str]:
    """The ``celery`` command's own options and the worker's: ``worker --concurrency``."""
    import click
    from celery.bin.celery import celery as group

    names = [f"celery {option_name(p)}" for p in group.params if isinstance(p, click.Option)]
    worker = group.commands["worker"]
    names += [f"worker {option_name(p)}" for p in worker.params if isinstance(p, click.Option)]
    return sorted(names)


def pytest_fixtures() -> list[str]:
    """The plugin's fixtures, read from its source (Celery's venv need not have pytest)."""
    spec = importlib.util.find_spec("celery.contrib.pytest")
    assert spec is not None and spec.origin is not None
    with open(spec.origin, encoding="utf-8") as source:
        tree = ast.parse(source.read())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for decorator in node.decorator_list:
                target = decorator.func if isinstance(decorator, ast.Call) else decorator
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    found.append(node.name)
    return public(found)


def testing_names() -> list[str]:
    """Public names defined in each module of ``celery.contrib.testing``, as dotted paths."""
    import celery.contrib.testing as package

    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        for name, value in vars(module).items():
            if not name.startswith("_") and getattr(value, "__module__", None) == module.__name__:
                names.append(f"{module.__name__}.{name}")
    return sorted(names)


def check_path(path: str) -> None:
    """Raise unless Celery has ``path``: a module, or a name defined at a module's top.

    A module that needs an optional dependency (Django) is read from its source instead.
    """
    try:
        if importlib.util.find_spec(path) is not None:
            return  # a module (imported or not: Sphinx's extension needs Sphinx)
    except ImportError:  # the parent is a module, not a package: path names an attribute
        pass
    module, _, name = path.rpartition(".")
    try:
        getattr(importlib.import_module(module), name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] == "celery":
            raise
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None
        with open(spec.origin, encoding="utf-8") as source:
            tree = ast.parse(source.read())
        defined = {
            node.name
            for node in tree.body
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        }
        if name not in defined:
            raise LookupError(f"celery has no {path}") from None


def module_all(name: str) -> list[str]:
    return public(importlib.import_module(name).__all__)


def surface() -> dict[str, Any]:
    import celery
    from celery import Celery, Task
    from celery.app.control import Control, Inspect
    from celery.canvas import Signature, _chain, _chord, group
    from celery.result import AsyncResult, GroupResult, ResultSet

    app = Celery("surface", set_as_current=False)

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    for path in DOCUMENTED_PATHS:
        check_path(path)
    groups = {
        "top-level": public(celery.__all__),
        "app": members(Celery, app),
        "task": members(Task, add),
        "signature": members(Signature, add.s(1, 2)),
        "chain": members(_chain, minus=Signature),
        "group": members(group, minus=Signature),
        "chord": members(_chord, minus=Signature),
        "asyncresult": members(AsyncResult, AsyncResult("id", app=app)),
        "resultset": members(ResultSet, ResultSet([], app=app)),
        "groupresult": members(GroupResult, minus=ResultSet),
        "control": members(Control),
        "inspect": members(Inspect),
        "states": module_all("celery.states"),
        "exceptions": module_all("celery.exceptions"),
        "signals": module_all("celery.signals"),
        "settings": settings(),
        "cli": cli_commands(),
        "cli-options": cli_options(),
        "pytest": pytest_fixtures(),
        "testing": testing_names(),
        "paths": sorted(DOCUMENTED_PATHS),
    }
    return {"celery_version": celery.__version__, "groups": groups}


if __name__ == "__main__":
    json.dump(surface(), sys.stdout, indent=1, sort_keys=False)
    sys.stdout.write("\n")
