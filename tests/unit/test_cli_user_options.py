"""``app.user_options``: an app's own command-line options, as Celery's: preload options
on every command with ``user_preload_options``, and options of the worker's own."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click
import pytest

from celeriac import Celery, signals
from celeriac.cli import run_for_app
from celeriac.worker.exitcodes import EX_USAGE


@pytest.fixture
def preloaded() -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def receiver(sender: Any = None, app: Any = None, options: Any = None, **kw: Any) -> None:
        seen.append({"sender": getattr(sender, "__name__", sender), "app": app, **options})

    signals.user_preload_options.connect(receiver)
    yield seen
    signals.user_preload_options.disconnect(receiver)


def test_preload_options_reach_every_command_through_the_signal(
    app: Celery, preloaded: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    app.user_options["preload"].add(click.Option(["--tenant"], default="main"))
    assert run_for_app(app, ["report", "--tenant", "acme"]) == 0
    assert "celeriac" in capsys.readouterr().out  # the command itself ran
    assert preloaded == [{"sender": "report_command", "app": app, "tenant": "acme"}]
    assert run_for_app(app, ["report"]) == 0
    assert preloaded[-1]["tenant"] == "main"  # the default is delivered too, as Celery's


def test_worker_options_are_the_workers_only_and_per_app(
    app: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    app.user_options["worker"].add(click.Option(["--heartbeat-file"], help="Touch this file."))
    assert run_for_app(app, ["worker", "--help"]) == 0
    assert "--heartbeat-file" in capsys.readouterr().out
    assert run_for_app(app, ["report", "--heartbeat-file", "x"]) == EX_USAGE
    assert "No such option '--heartbeat-file'" in capsys.readouterr().err
    other = Celery("other", broker="memory://", set_as_current=False)
    assert run_for_app(other, ["worker", "--help"]) == 0  # the commands are not changed
    assert "--heartbeat-file" not in capsys.readouterr().out


def test_bad_user_options_are_refused_or_warned(
    app: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    app.user_options["worker"].add("--fast")
    assert run_for_app(app, ["report"]) == EX_USAGE
    assert "add click.Option objects" in capsys.readouterr().err
    app.user_options["worker"].clear()
    app.user_options["workers"].add(click.Option(["--fast"], is_flag=True))
    with pytest.warns(UserWarning, match=r"app.user_options\['workers'\] is read by no command"):
        assert run_for_app(app, ["report"]) == 0


def test_beat_and_events_options_are_on_those_commands(
    app: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    app.user_options["beat"].add(click.Option(["--beat-extra"], help="Beat only."))
    app.user_options["events"].add(click.Option(["--events-extra"], help="Events only."))
    assert run_for_app(app, ["beat", "--help"]) == 0
    assert run_for_app(app, ["events", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--beat-extra" in out and "--events-extra" in out
