"""Celery's app hooks and helpers: on_after_configure/finalize/fork, now(),
config_from_envvar and current_worker_task."""

from __future__ import annotations

import datetime as dt
import importlib
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import start_worker
from tests.integration.workers import TEST_ENV, WorkerProcess, project_env


def make_app(**conf: Any) -> Celery:
    return Celery("hooks", broker="memory://", backend="cache+memory://", **conf)


def test_on_after_configure_fires_once_at_first_use_with_settings_written_before() -> None:
    app = make_app()
    app.conf.update(task_default_queue="orders")  # written after creation, before use
    seen: list[tuple[Any, str]] = []

    @app.on_after_configure.connect
    def setup(sender: Any, source: Any, **kwargs: Any) -> None:
        seen.append((sender, source.task_default_queue))

    @app.task
    def ping() -> str:
        return "pong"

    assert seen == []  # connecting after creation is in time
    ping.delay()
    ping.delay()
    app.finalize()
    assert seen == [(app, "orders")]


def test_on_after_finalize_fires_after_tasks_are_registered() -> None:
    app = make_app()
    order: list[str] = []

    @app.on_after_configure.connect
    def configured(sender: Any, **kwargs: Any) -> None:
        order.append("configure")

    @app.on_after_finalize.connect
    def finalized(sender: Any, **kwargs: Any) -> None:
        assert sender is app
        order.append(f"finalize:{'hooks.ping' in sender.tasks}")

    @app.task(name="hooks.ping")
    def ping() -> str:
        return "pong"

    app.finalize()
    app.finalize()  # once only
    assert order == ["configure", "finalize:True"]


def test_now_is_an_aware_utc_datetime() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    now = make_app().now()
    assert now.tzinfo is not None and now.utcoffset() == dt.timedelta(0)
    assert before <= now <= dt.datetime.now(dt.timezone.utc)


def test_config_from_envvar_loads_the_named_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "envconfig_mod.py").write_text("task_default_queue = 'from-env'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("HOOKS_CONFIG_MODULE", "envconfig_mod")
    app = make_app()
    assert app.config_from_envvar("HOOKS_CONFIG_MODULE") is True
    assert app.conf.task_default_queue == "from-env"
    sys.modules.pop("envconfig_mod", None)


def test_config_from_envvar_unset_variable_raises_naming_it_unless_silent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HOOKS_MISSING_CONFIG", raising=False)
    app = make_app()
    with pytest.raises(ImproperlyConfigured, match="'HOOKS_MISSING_CONFIG' is not set"):
        app.config_from_envvar("HOOKS_MISSING_CONFIG")
    assert app.config_from_envvar("HOOKS_MISSING_CONFIG", silent=True) is False
    monkeypatch.setenv("HOOKS_MISSING_CONFIG", "no_such_config_module_xyz")
    with pytest.raises(ImproperlyConfigured, match="HOOKS_MISSING_CONFIG='no_such_config"):
        app.config_from_envvar("HOOKS_MISSING_CONFIG")
    assert app.config_from_envvar("HOOKS_MISSING_CONFIG", silent=True) is False


def test_current_worker_task_is_the_running_task_and_none_outside() -> None:
    app = make_app()

    @app.task
    def who() -> str | None:
        task = app.current_worker_task
        return None if task is None else task.name

    assert app.current_worker_task is None
    with start_worker(app, pool="threads"):
        assert who.delay().get(timeout=5) == who.name
    assert who.apply().get() == who.name  # run as the worker would, here


FORK_HOOK = textwrap.dedent(
    """

    forked_in = None


    @app.on_after_fork.connect
    def remember_fork(sender, **kwargs):
        global forked_in
        forked_in = {"pid": os.getpid(), "sender_is_app": sender is app}


    @app.task
    def fork_hook_ran():
        return {"hook": forked_in, "pid": os.getpid()}
    """
)


def test_on_after_fork_runs_in_each_prefork_child(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "proj.py").write_text((tmp_path / "proj.py").read_text() + FORK_HOOK)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    proj = importlib.import_module("proj")
    worker = WorkerProcess.started(tmp_path, env, "-P", "prefork", "-c", "1")
    try:
        answer = proj.fork_hook_ran.delay().get(timeout=10)
    finally:
        worker.stop()
        proj.app.close()
        sys.modules.pop("proj", None)
    assert answer["hook"] == {"pid": answer["pid"], "sender_is_app": True}
    assert answer["pid"] not in (worker.process.pid, os.getpid())  # a forked child ran it
