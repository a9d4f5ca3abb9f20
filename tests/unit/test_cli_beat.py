"""``celeriac beat`` and ``celeriac beat entries`` on the command line (no broker server:
the app uses the in-process broker, and the commands run in this process)."""

from __future__ import annotations

import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from celeriac.cli import cli
from celeriac.worker.exitcodes import EX_CONFIG, EX_USAGE

PROJECT = textwrap.dedent(
    """
    from celeriac import Celery

    app = Celery("proj", broker="memory://")
    app.conf.beat_schedule = {"cleanup": {"task": "proj.cleanup", "schedule": 300.0}}
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    name = f"beatproj_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(PROJECT)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="celeriac")


def test_the_help_lists_celerys_beat_options() -> None:
    text = run("beat", "--help").output
    for option in ("-l, --loglevel", "-s, --schedule", "-S, --scheduler", "--max-interval",
                   "--pidfile", "entries"):  # fmt: skip
        assert option in text


def test_detach_is_refused_with_what_to_do() -> None:
    result = run("-A", "nowhere", "beat", "--detach")
    assert result.exit_code == EX_USAGE
    assert "process manager" in result.output


def test_a_scheduler_that_is_not_celeriacs_is_a_configuration_error(project: str) -> None:
    result = run("-A", project, "beat", "-S", "collections:OrderedDict")
    assert result.exit_code == EX_CONFIG, result.output
    assert "not a subclass of celeriac.beat.Scheduler" in result.output


def test_worker_schedule_options_go_with_dash_b(project: str) -> None:
    result = run("-A", project, "worker", "-s", "celerybeat-schedule")
    assert result.exit_code == EX_USAGE
    assert "go with -B" in result.output


def test_entries_add_list_disable_remove(project: str) -> None:
    added = run("-A", project, "beat", "entries", "add", "report", "--task", "proj.report",
                "--crontab", "0 3 * * *", "--args", '["sales"]',
                "--options", '{"queue": "r"}')  # fmt: skip
    assert added.exit_code == 0, added.output
    assert run("-A", project, "beat", "entries", "disable", "cleanup").exit_code == 0
    listed = run("-A", project, "beat", "entries", "list").output
    assert "report: proj.report crontab '0 3 * * *'" in listed
    assert "cleanup: proj.cleanup every 300 s  [disabled]" in listed
    sent = run("-A", project, "beat", "entries", "run-now", "report")
    assert sent.exit_code == 0 and "sent, task id" in sent.output
    assert run("-A", project, "beat", "entries", "remove", "report").exit_code == 0
    assert "report" not in run("-A", project, "beat", "entries", "list").output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "5", "--crontab", "* * * * *"], "exactly one of --every"),
        ([], "exactly one of --every"),
        (["--every", "5", "--args", "{}"], "--args must be a JSON list"),
        (["--crontab", "0 25 * * *"], "out of range"),
    ],
)
def test_entries_add_refuses_bad_input(project: str, args: list[str], message: str) -> None:
    result = run("-A", project, "beat", "entries", "add", "x", "--task", "t", *args)
    assert result.exit_code == EX_USAGE
    assert message in result.output
