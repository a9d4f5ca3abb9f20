"""``CeleryCommandException``: the refusal celeriac's commands raise, and the one a
command of one's own raises to exit with its message and status, as in Celery."""

from __future__ import annotations

from collections.abc import Iterator

import click
import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.exceptions import CeleryCommandException


@pytest.fixture
def own_command() -> Iterator[click.Command]:
    @click.command("own-check")
    @click.option("--fail", is_flag=True)
    def own_check(fail: bool) -> None:
        if fail:
            raise CeleryCommandException(message="the check failed: disk full", exit_code=3)
        click.echo("fine")

    cli.add_command(own_check)
    yield own_check
    cli.commands.pop("own-check")


def test_a_command_of_ones_own_exits_with_its_message_and_status(
    own_command: click.Command,
) -> None:
    failed = CliRunner().invoke(cli, ["own-check", "--fail"], prog_name="celeriac")
    assert failed.exit_code == 3
    assert "Error: the check failed: disk full" in failed.output
    assert CliRunner().invoke(cli, ["own-check"]).output == "fine\n"


def test_app_start_returns_the_status_of_a_command_exception(
    own_command: click.Command, capsys: pytest.CaptureFixture[str]
) -> None:
    app = Celery("p", broker="memory://", set_as_current=False)
    assert app.start(["own-check", "--fail"]) == 3
    assert "Error: the check failed: disk full" in capsys.readouterr().err


def test_celeriacs_own_refusals_are_command_exceptions() -> None:
    # No -A: celeriac's refusal, catchable as Celery's exception, status EX_USAGE (64).
    with pytest.raises(CeleryCommandException) as refused:
        cli.main(["worker"], prog_name="celeriac", standalone_mode=False)
    assert refused.value.exit_code == 64
    assert "no app given" in refused.value.message
