"""Celery 3's module paths and Celery's leftover names that projects still import:
``celeriac.execute.send_task``, ``celeriac.registry.tasks``, the ``celeriac.log`` helpers,
``app.type_checker``, ``Task.abstract``, and the exceptions ``AlreadyRegistered`` and
``NotConfigured``."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator

import pytest

import celeriac
from celeriac import Celery, Task
from celeriac.exceptions import AlreadyRegistered, CeleryWarning, NotConfigured, TaskError
from tests.conftest import take_messages


@pytest.fixture
def current() -> Iterator[Celery]:
    app = Celery("old", broker="memory://")  # made the current app

    @app.task(name="old.add")
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    app.close()


def test_send_task_and_the_registry_at_their_celery3_paths_use_the_current_app(
    current: Celery,
) -> None:
    from celeriac.execute import send_task
    from celeriac.registry import tasks

    assert "old.add" in tasks and tasks is current.tasks
    assert celeriac.execute.send_task is send_task  # an attribute, as Celery keeps it
    send_task("old.add", args=(1, 2))
    [(message, _)] = take_messages(current)
    assert message.task_name == "old.add"


def test_the_log_helpers_act_on_the_current_apps_logging(current: Celery) -> None:
    from celeriac.log import get_default_logger, redirect_stdouts_to_logger

    logger = get_default_logger("old.audit")
    assert logger is logging.getLogger("old.audit")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stdout, stderr = sys.stdout, sys.stderr
    try:
        redirect_stdouts_to_logger(logger, loglevel="INFO")
        print("hello from print")
    finally:
        sys.stdout, sys.stderr = stdout, stderr
        logger.removeHandler(handler)
    assert "hello from print" in records


def test_type_checker_refuses_the_calls_the_function_would(current: Celery) -> None:
    def add(x: int, y: int = 0) -> int:
        return x + y

    check = current.type_checker(add).__func__
    check(1)
    check(1, y=2)
    with pytest.raises(TypeError):
        check()
    with pytest.raises(TypeError):
        check(1, 2, 3)

    def bound(self: object, x: int) -> int:
        return x

    current.type_checker(bound, bound=True).__func__(5)


def test_celerys_leftover_names_import_and_sit_where_celery_puts_them() -> None:
    assert Task.abstract is True  # read by neither Celery nor celeriac
    assert issubclass(AlreadyRegistered, TaskError)
    assert issubclass(NotConfigured, CeleryWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotConfigured)  # a filter a project may keep
        warnings.warn("no config", NotConfigured, stacklevel=1)
