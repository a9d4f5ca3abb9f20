"""User guide, "Configuration and defaults": a configuration module, a namespace prefix (as
in a Django settings file), environment variables for the broker and result store,
settings changed in code, and a worker that runs with all of them."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.compat.conftest import Guide, guide_project
from tests.conftest import REDIS_URL
from tests.integration.workers import WorkerProcess

SETTINGS = """
# A Django-style settings module: Celery's settings under the CELERY_ prefix, beside
# the project's own names.
import os

CELERY_BROKER_URL = os.environ["GUIDE_BROKER"]
CELERY_RESULT_BACKEND = os.environ["GUIDE_BACKEND"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"key_prefix": os.environ["GUIDE_PREFIX"]}
CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"key_prefix": os.environ["GUIDE_PREFIX"]}
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_EXPIRES = 600
CELERY_TASK_DEFAULT_QUEUE = "configured"
CELERY_TASK_ANNOTATIONS = {"guide_config.add": {"rate_limit": "100/s"}}
DEBUG = True
SECRET_KEY = "not a celery setting"
"""

PROJECT = """
import os

from celeriac import Celery

os.environ.setdefault("GUIDE_BROKER", "unset")
app = Celery("guide_config")
app.config_from_object("guide_settings", namespace="CELERY")


@app.task(bind=True)
def add(self, x, y):
    return {"sum": x + y, "queue": self.request.delivery_info["routing_key"],
            "rate_limit": self.rate_limit}
"""


@pytest.fixture(scope="module")
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GUIDE_BROKER", REDIS_URL)
        patch.setenv("GUIDE_BACKEND", REDIS_URL)
        files = {"guide_settings.py": SETTINGS}
        with guide_project(tmp_path_factory, "guide_config", PROJECT, files=files) as guide:
            env = {**guide.env, "GUIDE_BROKER": REDIS_URL, "GUIDE_BACKEND": REDIS_URL}
            worker = WorkerProcess.started(guide.path, env, "-P", "threads", "-Q", "configured",
                                           app="guide_config")  # fmt: skip
            try:
                yield guide
            finally:
                assert worker.stop() == 0, worker.text


def test_a_namespaced_settings_module_configures_app_and_worker(guide: Guide) -> None:
    proj = guide.module
    conf = proj.app.conf
    assert conf.broker_url == REDIS_URL
    assert conf.result_expires == 600
    assert conf.task_default_queue == "configured"
    assert proj.add.delay(1, 2).get(timeout=20) == {
        "sum": 3,
        "queue": "configured",
        "rate_limit": "100/s",
    }


def test_the_projects_own_names_are_left_alone(guide: Guide) -> None:
    conf = guide.module.app.conf
    assert "DEBUG" not in conf and "SECRET_KEY" not in conf and "debug" not in conf


def test_settings_changed_in_code(guide: Guide) -> None:
    from celeriac import Celery

    app = Celery("incode", broker="memory://")
    app.conf.update(task_serializer="json", result_expires=dt.timedelta(hours=1))
    app.conf.task_default_queue = "elsewhere"
    assert app.conf.result_expires == dt.timedelta(hours=1)
    assert app.conf["task_default_queue"] == "elsewhere"
    app.close()


def test_environment_variables_name_the_broker_and_result_store(guide: Guide) -> None:
    script = (
        "from celeriac import Celery\n"
        "app = Celery('envs')\n"
        "print(app.conf.broker_url, app.conf.result_backend)\n"
    )
    env = {**guide.env, "CELERY_BROKER_URL": "redis://example:6379/3",
           "CELERY_RESULT_BACKEND": "redis://example:6379/4"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.split() == ["redis://example:6379/3", "redis://example:6379/4"]
