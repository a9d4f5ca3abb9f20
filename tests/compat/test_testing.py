"""User guide, "Testing with Celery": eager calls for unit tests, the pytest plugin's
fixtures overridden the way a Celery project's conftest does, the ``celery`` marker, and
``start_worker`` with its ping check — run as a user's test session (pytester)."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = """
import pytest


@pytest.fixture(scope="session")
def celery_config():
    return {"task_default_queue": "from-conftest", "result_expires": 60}


@pytest.fixture(scope="session")
def celery_parameters():
    return {"main": "testproj"}


@pytest.fixture(scope="session")
def celery_includes():
    return ["celeriac.contrib.testing.tasks"]


@pytest.fixture(scope="session")
def celery_worker_parameters():
    return {"concurrency": 2}
"""

TESTS = """
import pytest

from celeriac import current_app
from celeriac.contrib.testing.app import TestApp, setup_default_app
from celeriac.contrib.testing.worker import start_worker


def test_the_app_reads_the_overridden_fixtures(celery_app):
    assert celery_app.main == "testproj"
    assert celery_app.conf.task_default_queue == "from-conftest"
    assert celery_app.conf.broker_url == "memory://"
    assert "celery.ping" in celery_app.tasks  # celery_includes were imported
    assert current_app.main == "testproj"


@pytest.mark.celery(result_expires=5)
def test_the_marker_overrides_one_test(celery_app):
    assert celery_app.conf.result_expires == 5


def test_a_real_worker_runs_the_apps_tasks(celery_app, celery_worker):
    @celery_app.task
    def mul(x, y):
        return x * y

    # A task defined after the worker started: the worker looks tasks up when they arrive.
    assert mul.delay(4, 4).get(timeout=10) == 16
    assert celery_worker.concurrency == 2


def test_eager_mode_runs_in_this_process(celery_app):
    @celery_app.task
    def add(x, y):
        return x + y

    celery_app.conf.task_always_eager = True
    result = add.delay(2, 3)
    assert result.get() == 5 and result.successful()
    assert add.apply((1, 1)).get() == 2


def test_start_worker_checks_the_worker_answers_a_ping():
    app = TestApp("pinged")
    import celeriac.contrib.testing.tasks  # noqa: F401 - registers celery.ping

    with setup_default_app(app), start_worker(app, pool="threads") as worker:
        @app.task
        def hello():
            return "hello"

        assert hello.delay().get(timeout=10) == "hello"
        assert worker.ready.is_set()
    app.close()


def test_the_session_app_and_worker(celery_session_app, celery_session_worker):
    @celery_session_app.task
    def double(x):
        return 2 * x

    assert double.delay(21).get(timeout=10) == 42
"""

TRAPPED = """
import pytest


@pytest.fixture(scope="session")
def use_celery_app_trap():
    return True


def test_the_trap_catches_current_app(celery_app):
    from celeriac import current_app

    with pytest.raises(RuntimeError, match="app trap is on"):
        current_app.tasks


def test_depends_on_current_app_lifts_it(celery_app, depends_on_current_app):
    from celeriac import current_app

    assert current_app.main == celery_app.main
"""


def test_a_projects_conftest_drives_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_project=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=6)


def test_the_app_trap(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_trapped=TRAPPED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=2)
