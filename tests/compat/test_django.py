"""User guide, "First steps with Django": a project laid out as the guide lays it out
(``proj/celery.py`` with the ``CELERY_`` namespace and ``autodiscover_tasks()``, ``@shared_task``
in an app's ``tasks.py`` that imports models), its worker started with ``-A proj``, and
``delay_on_commit`` from Django code — on SQLite, with only the import changed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.conftest import redis_or_skip
from tests.conftest import REDIS_URL
from tests.django_project import project_env, run_client, write_project
from tests.integration.workers import WorkerProcess

pytest.importorskip("django", reason="the django extra is not installed")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    redis_or_skip()
    directory = write_project(tmp_path_factory.mktemp("django_guide"))
    databases = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(directory / "db.sqlite3")}
    }
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    env = project_env(
        directory, databases, CELERIAC_TEST_BROKER_URL=REDIS_URL,
        CELERIAC_TEST_RESULTS_URL=REDIS_URL, CELERIAC_TEST_PREFIX=prefix,
        DJANGO_SETTINGS_MODULE="proj.settings",
    )  # fmt: skip
    assert run_client(directory, env, "migrate") == 3
    worker = WorkerProcess.started(directory, env, "-P", "threads", app="proj")
    try:
        yield directory, env
    finally:
        assert worker.stop() == 0, worker.text
        import redis

        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def test_shared_tasks_that_use_models_run_on_the_worker(
    project: tuple[Path, dict[str, str]],
) -> None:
    directory, env = project
    assert run_client(directory, env, "read") == 3  # autodiscovered, models loaded


def test_delay_on_commit_sends_after_the_transaction(project: tuple[Path, dict[str, str]]) -> None:
    directory, env = project
    seen = run_client(directory, env, "commit")
    assert seen["is_django_task"] and seen["sent_inside"] == []
    assert seen["sent_after"] == [seen["id"]] and seen["value"] == 42
    rolled_back = run_client(directory, env, "rollback")
    assert rolled_back["ids"][0] not in rolled_back["sent"]  # rolled back: never sent
