"""Checks on the codebase itself: module size, the public API, typing marker."""

from __future__ import annotations

import importlib
from pathlib import Path

import click

import celeriac

SRC = Path(celeriac.__file__).parent
MAX_LINES = 600


def test_no_module_is_longer_than_600_lines() -> None:
    too_long = {
        str(path.relative_to(SRC)): n
        for path in SRC.rglob("*.py")
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert too_long == {}, f"split these modules (limit {MAX_LINES} lines): {too_long}"


def test_every_module_opens_with_a_docstring() -> None:
    missing = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if path.read_text().strip() and not path.read_text().lstrip().startswith('"""')
    ]
    assert missing == []


def test_public_api_matches_celery_names() -> None:
    for name in (
        "Celery",
        "Celeriac",
        "Task",
        "shared_task",
        "signature",
        "Signature",
        "current_app",
        "current_task",
        "uuid",
        "AsyncResult",
    ):
        assert name in celeriac.__all__ and hasattr(celeriac, name), name
    assert celeriac.Celery is celeriac.Celeriac


def test_all_names_exist_in_each_public_module() -> None:
    for module_name in (
        "celeriac",
        "celeriac.exceptions",
        "celeriac.states",
        "celeriac.signals",
        "celeriac.canvas",
        "celeriac.log",
        "celeriac.utils.log",
        "celeriac.app.task",
        "celeriac.contrib.pytest",
        "celeriac.schedules",
    ):
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            assert hasattr(module, name), f"{module_name}.{name}"


CELERY_PATHS = {
    "celeriac.app.task": ["Task", "Context"],
    "celeriac.contrib.migrate": ["migrate_tasks"],
    "celeriac.contrib.rdb": ["Rdb", "debugger", "set_trace"],
    "celeriac.worker.control": ["Panel", "control_command", "inspect_command"],
    "celeriac.exceptions": [
        "Ignore",
        "MaxRetriesExceededError",
        "NotRegistered",
        "Reject",
        "Retry",
        "SoftTimeLimitExceeded",
        "TimeLimitExceeded",
        "TimeoutError",
        "WorkerLostError",
    ],
    "celeriac.result": ["AsyncResult", "EagerResult"],
    "celeriac.utils.log": ["get_task_logger"],
    "celeriac.contrib.pytest": ["celery_app", "celery_config"],
    "celeriac.schedules": ["crontab", "schedule", "crontab_parser", "maybe_schedule"],
}


def test_celery_import_paths_work_with_celeriac() -> None:
    missing = [
        f"{module}.{name}"
        for module, names in CELERY_PATHS.items()
        for name in names
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []


def test_exception_tree_has_one_root() -> None:
    from celeriac import exceptions

    # Warnings have their own root; Celery's deprecation classes keep Python's own bases,
    # so filters on DeprecationWarning still see them. reraise is Celery's helper.
    deprecations = {exceptions.CDeprecationWarning, exceptions.CPendingDeprecationWarning}
    # As in Celery: a command's exit is click's, a worker's shutdown is SystemExit's.
    apart = {
        exceptions.CeleryCommandException: click.ClickException,
        exceptions.WorkerShutdown: SystemExit,
        exceptions.WorkerTerminate: SystemExit,
    }
    for name in exceptions.__all__:
        value = getattr(exceptions, name)
        if name == "reraise" or value in deprecations:
            continue
        if value in apart:
            assert issubclass(value, apart[value]), name
            continue
        root = exceptions.CeleryWarning if issubclass(value, Warning) else exceptions.CeleriacError
        assert issubclass(value, root), name
    from celeriac.config import NotInEffectWarning, UnknownSettingWarning

    assert issubclass(NotInEffectWarning, exceptions.CeleryWarning)
    assert issubclass(UnknownSettingWarning, exceptions.CeleryWarning)


def test_package_is_typed() -> None:
    assert (SRC / "py.typed").exists()
