"""The group's options Celery has: ``--config`` reads a settings module under the app's
own (``-b`` still wins), ``-q`` and ``-C`` are accepted; the worker's ``-X`` leaves
declared queues out and refuses to leave none, ``--heartbeat-interval`` takes seconds."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from celeriac import Celeriac
from celeriac.cli import cli
from celeriac.cli.base import CLIContext, CLIError
from celeriac.cli.worker import exclude_queues_of, worker_kwargs

APP = """\
from celeriac import Celeriac
app = Celeriac("globproj", broker="memory://")
app.conf.result_expires = 99
"""
CONFIG = """\
import os
task_default_queue = "from_config"
result_expires = 10
broker_url = "memory://from-config"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "globproj.py").write_text(APP)
    (tmp_path / "globconfig.py").write_text(CONFIG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    for name in ("globproj", "globconfig"):
        sys.modules.pop(name, None)


def test_config_module_is_read_under_the_apps_own_settings(project: Path) -> None:
    app = CLIContext("globproj", config="globconfig").load_app()
    assert app.conf.task_default_queue == "from_config"  # the app sets none: the module's
    assert app.conf.result_expires == 99  # the app's own value wins, as in Celery
    assert app.conf.broker_url == "memory://"  # given to Celeriac(): the app's
    app.close()


def test_broker_option_wins_over_the_config_module(project: Path) -> None:
    (project / "bare.py").write_text("from celeriac import Celeriac\napp = Celeriac('bare')\n")
    app = CLIContext("bare", broker="memory://cli", config="globconfig").load_app()
    assert app.conf.broker_url == "memory://cli"
    app.close()
    sys.modules.pop("bare", None)
    plain = CLIContext("bare", config="globconfig").load_app()
    assert plain.conf.broker_url == "memory://from-config"
    plain.close()
    sys.modules.pop("bare", None)


def test_a_missing_config_module_is_named(project: Path) -> None:
    with pytest.raises(CLIError, match=r"--config no_such_config: cannot import"):
        CLIContext("globproj", config="no_such_config").load_app()
    done = CliRunner().invoke(cli, ["-A", "globproj", "--config", "nope_cfg", "report"])
    assert done.exit_code == 64 and "--config nope_cfg" in done.output


def test_quiet_and_no_color_are_accepted(project: Path) -> None:
    done = CliRunner().invoke(cli, ["-q", "-C", "-A", "globproj", "report"])
    assert done.exit_code == 0, done.output
    misplaced = CliRunner().invoke(cli, ["-A", "globproj", "report", "-q"])
    assert misplaced.exit_code == 64 and "it goes before the command" in misplaced.output


def test_exclude_queues_of_the_declared_ones() -> None:
    app = Celeriac("xq", broker="memory://")
    app.conf.task_queues = {"high": {}, "low": {}, "celery": {}}
    assert exclude_queues_of(app, [], ["low"]) == ["high", "celery"]  # no -Q: every declared
    assert exclude_queues_of(app, ["low", "high"], ["low"]) == ["high"]  # of -Q
    assert exclude_queues_of(app, ["low"], []) == ["low"]  # no -X: -Q unchanged
    with pytest.raises(CLIError, match="leaves no queue to consume"):
        exclude_queues_of(app, ["low"], ["low,high"])
    app.close()
    plain = Celeriac("xq2", broker="memory://")
    assert exclude_queues_of(plain, [], ["other"]) == ["celery"]  # task_default_queue
    plain.close()


def test_heartbeat_interval_option() -> None:
    assert worker_kwargs(heartbeat_interval=5) == {"heartbeat_interval": 5}
    done = CliRunner().invoke(cli, ["-A", "x", "worker", "--heartbeat-interval", "0"])
    assert done.exit_code == 64 and "--heartbeat-interval" in done.output
