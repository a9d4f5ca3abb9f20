"""The pytest plugin (loaded through the ``pytest11`` entry point): app and worker fixtures,
under celeriac's names and Celery's.

Celery's fixtures are the ones to override, as in a Celery project: ``celery_config``
(settings), ``celery_parameters`` (the app's constructor arguments), ``celery_includes``
(task modules to import), ``celery_class_tasks``, ``celery_worker_pool``,
``celery_worker_parameters``, ``use_celery_app_trap``, and the ``@pytest.mark.celery(...)``
marker for one test's settings. ``celeriac_*`` fixtures read them, so either name works.
The app runs on the in-process broker and result store unless the settings say otherwise.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from celeriac import _context
from celeriac.app.base import Celeriac
from celeriac.testing.worker import start_worker
from celeriac.worker.worker import Worker

# Contract suites are assert-heavy library code: rewrite them so failures show values.
# (Must run before they are imported; this module does not import them.)
pytest.register_assert_rewrite("celeriac.testing.contracts")

#: What a test app runs on unless its settings say otherwise.
TEST_DEFAULTS = {"broker_url": "memory://", "result_backend": "cache+memory://"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "celery(**overrides): settings for this test's celery_app / celeriac_app"
    )


class Trap:
    """Stands for the current app when ``use_celery_app_trap`` is on: code that reaches
    for ``current_app`` instead of the app it was given fails, naming the fix."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"the test used the current app (current_app.{name}) while the app trap is "
            f"on: pass the app explicitly, or request the depends_on_current_app fixture"
        )


@contextlib.contextmanager
def app_for_tests(
    config: dict[str, Any],
    parameters: dict[str, Any],
    includes: Sequence[str] = (),
    *,
    use_trap: bool = False,
    class_tasks: Sequence[Any] = (),
) -> Iterator[Celeriac]:
    """An app for tests, current while the block runs (or behind the trap), closed after."""
    app = Celeriac(
        parameters.pop("main", "celeriac.testing"),
        set_as_current=False,
        **{**TEST_DEFAULTS, **parameters, **config},
    )
    previous = _context._current_app
    _context.set_current_app(Trap() if use_trap else app)
    try:
        for module in includes:
            importlib.import_module(module)
        for task in class_tasks:
            app.register_task(task)
        app.finalize()
        yield app
    finally:
        _context.set_current_app(previous)
        app.close()


def _marked(request: pytest.FixtureRequest, config: dict[str, Any]) -> dict[str, Any]:
    mark = request.node.get_closest_marker("celery")
    return {**config, **(mark.kwargs if mark else {})}


# -- Celery's fixtures: override these ------------------------------------------------------
@pytest.fixture(scope="session")
def celery_config() -> dict[str, Any]:
    """Settings for the test app (override it in your conftest); in-process by default."""
    return {}


@pytest.fixture(scope="session")
def celery_parameters() -> dict[str, Any]:
    """Constructor arguments for the test app (``main``, ``task_cls``, ...)."""
    return {}


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """Task modules to import once the test app exists."""
    return ()


@pytest.fixture(scope="session")
def celery_class_tasks() -> Sequence[Any]:
    """Task classes to register with the test app."""
    return ()


@pytest.fixture(scope="session")
def celery_enable_logging() -> bool:
    """Kept for Celery's conftests: celeriac's test apps never touch logging."""
    return False


@pytest.fixture(scope="session")
def use_celery_app_trap() -> bool:
    """Return True to make any use of ``current_app`` in a test fail."""
    return False


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    """The pool of the test worker: threads (Celery's default here is solo)."""
    return "threads"


@pytest.fixture(scope="session")
def celery_worker_parameters() -> dict[str, Any]:
    """Extra ``Worker`` options for the test worker (concurrency, queues, ...)."""
    return {}


# -- celeriac's names, fed by Celery's --------------------------------------------------------
@pytest.fixture
def celeriac_config(celery_config: dict[str, Any]) -> dict[str, Any]:
    """Settings for ``celeriac_app``: ``celery_config`` over the in-process defaults."""
    return {**TEST_DEFAULTS, **celery_config}


@pytest.fixture
def celeriac_app(
    request: pytest.FixtureRequest,
    celeriac_config: dict[str, Any],
    celery_parameters: dict[str, Any],
    celery_includes: Sequence[str],
    celery_class_tasks: Sequence[Any],
    use_celery_app_trap: bool,
) -> Iterator[Celeriac]:
    """A fresh app for the test, current for its duration (unless the trap is on)."""
    with app_for_tests(
        _marked(request, celeriac_config),
        dict(celery_parameters),
        celery_includes,
        use_trap=use_celery_app_trap,
        class_tasks=celery_class_tasks,
    ) as app:
        yield app


@pytest.fixture
def celeriac_worker_pool(celery_worker_pool: str) -> str:
    """The pool of ``celeriac_worker``; override it (or ``celery_worker_pool``)."""
    return celery_worker_pool


@pytest.fixture
def celeriac_worker_parameters(celery_worker_parameters: dict[str, Any]) -> dict[str, Any]:
    """Extra ``Worker`` options for ``celeriac_worker``."""
    return dict(celery_worker_parameters)


@pytest.fixture
def celeriac_worker(
    celeriac_app: Celeriac, celeriac_worker_pool: str, celeriac_worker_parameters: dict[str, Any]
) -> Iterator[Worker]:
    """A real worker consuming ``celeriac_app``'s queues in a thread during the test."""
    with start_worker(
        celeriac_app, pool=celeriac_worker_pool, **celeriac_worker_parameters
    ) as worker:
        yield worker


# -- Celery's app and worker fixtures ---------------------------------------------------------
@pytest.fixture
def celery_app(celeriac_app: Celeriac) -> Celeriac:
    return celeriac_app


@pytest.fixture
def celery_worker(celeriac_worker: Worker) -> Worker:
    return celeriac_worker


@pytest.fixture
def depends_on_current_app(celery_app: Celeriac) -> None:
    """Make the test app current even when the app trap is on."""
    _context.set_current_app(celery_app)


@pytest.fixture(scope="session")
def celery_session_app(
    celery_config: dict[str, Any],
    celery_parameters: dict[str, Any],
    celery_includes: Sequence[str],
    celery_class_tasks: Sequence[Any],
    use_celery_app_trap: bool,
) -> Iterator[Celeriac]:
    """One app for the whole session (with ``celery_session_worker``)."""
    with app_for_tests(
        dict(celery_config),
        dict(celery_parameters),
        celery_includes,
        use_trap=use_celery_app_trap,
        class_tasks=celery_class_tasks,
    ) as app:
        yield app


@pytest.fixture(scope="session")
def celery_session_worker(
    celery_session_app: Celeriac,
    celery_worker_pool: str,
    celery_worker_parameters: dict[str, Any],
) -> Iterator[Worker]:
    """One worker for the whole session, consuming ``celery_session_app``'s queues."""
    with start_worker(
        celery_session_app, pool=celery_worker_pool, **celery_worker_parameters
    ) as worker:
        yield worker
