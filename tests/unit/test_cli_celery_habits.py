"""What a Celery user types at the command line: a group option after the command gets a
hint with the corrected command line, and every Celery worker option celeriac lacks is
refused with what to use instead. Nothing here starts a worker: each command stops
while its options are read, before any app or broker is touched.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner, Result

from celeriac.cli import cli
from celeriac.cli.base import take_option
from celeriac.cli.refused import REFUSED
from celeriac.cli.worker import no_prefetch
from celeriac.worker.exitcodes import EX_USAGE


def run(*args: str, prog: str = "celeriac") -> Result:
    return CliRunner().invoke(cli, list(args), prog_name=prog)


@pytest.mark.parametrize(
    ("args", "fixed"),
    [
        (["worker", "-A", "proj"], "celeriac -A proj worker"),
        (["worker", "-l", "info", "-A", "proj", "-c", "2"], "celeriac -A proj worker -l info -c 2"),
        (["worker", "--app=proj.celery:app"], "celeriac --app=proj.celery:app worker"),
        (["worker", "-Aproj"], "celeriac -Aproj worker"),
        (["-A", "proj", "worker", "-b", "redis://h:6379/0"],
         "celeriac -A proj -b redis://h:6379/0 worker"),
        (["worker", "--workdir", "/srv/my app"], "celeriac --workdir '/srv/my app' worker"),
        (["embedded", "status", "-A", "proj"], "celeriac -A proj embedded status"),
    ],
)  # fmt: skip
def test_a_group_option_after_the_command_gets_the_corrected_command_line(
    args: list[str], fixed: str
) -> None:
    result = run(*args)
    assert result.exit_code == EX_USAGE
    option = next(a for a in args[1:] if a.startswith("-") and a not in ("-l", "-c"))
    option = option.split("=")[0] if option.startswith("--") else option[:2]
    command = "embedded" if args[0] == "embedded" else "worker"
    assert f"Error: {option} is an option of 'celeriac', not of '{command}'" in result.output
    assert f"it goes before the command: {fixed}\n" in result.output
    assert "No such option" not in result.output


def test_the_hint_names_the_program_the_user_ran() -> None:
    result = run("worker", "-A", "proj", prog="celery")
    assert result.exit_code == EX_USAGE
    assert "-A is an option of 'celery', not of 'worker'" in result.output
    assert "celery -A proj worker" in result.output


def test_an_option_unknown_everywhere_is_still_no_such_option() -> None:
    result = run("worker", "--bogus")
    assert result.exit_code == EX_USAGE
    assert "No such option '--bogus'" in result.output


def test_take_option_moves_the_first_occurrence_with_its_value() -> None:
    assert take_option(["-l", "info", "-A", "p"], "-A", takes_value=True) == (
        ["-A", "p"],
        ["-l", "info"],
    )
    assert take_option(["--app=p", "-c", "1"], "--app", takes_value=True) == (
        ["--app=p"],
        ["-c", "1"],
    )
    assert take_option(["--apple"], "--app", takes_value=True) == ([], ["--apple"])
    assert take_option(["-c", "1"], "-A", takes_value=True) == ([], ["-c", "1"])


# -- Celery worker options celeriac does not offer --------------------------------------------
WHAT_INSTEAD = {
    "-S": "revocations are kept in the broker",
    "--executable": "only applies to --detach",
}


@pytest.mark.parametrize(("names", "takes_value"), [(r[0], r[1]) for r in REFUSED])
def test_each_celery_option_celeriac_lacks_is_refused_with_what_to_use_instead(
    names: tuple[str, ...], takes_value: bool
) -> None:
    for name in names:  # the short and the long spelling alike
        args = [name, "10,2"] if takes_value else [name]
        result = run("-A", "nowhere", "worker", *args)
        assert result.exit_code == EX_USAGE, result.output
        assert f"Error: {'/'.join(names)} is not supported: " in result.output
        assert WHAT_INSTEAD[names[0]] in result.output
    assert set(WHAT_INSTEAD) == {names[0] for names, *_ in REFUSED}


def test_refused_options_are_listed_in_the_help() -> None:
    text = run("worker", "--help").output
    for names, *_ in REFUSED:
        assert ", ".join(names) in text
    for accepted in (
        "--time-limit",
        "--soft-time-limit",
        "--purge, --discard",
        "-I, --include",
        "--disable-prefetch",
        "-E, --task-events, --events",
        "-O, --optimization",
    ):
        assert accepted in text, accepted  # fmt: skip


def test_disable_prefetch_is_a_multiplier_of_one_and_contradicts_a_larger_one() -> None:
    assert no_prefetch(None) == 1 and no_prefetch(1) == 1
    result = run("-A", "nowhere", "worker", "--disable-prefetch", "--prefetch-multiplier", "4")
    assert result.exit_code == EX_USAGE
    assert "--disable-prefetch and --prefetch-multiplier 4 contradict" in result.output


@pytest.mark.parametrize("option", ["--time-limit", "--soft-time-limit"])
@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_time_limit_must_be_a_positive_number_of_seconds(option: str, value: str) -> None:
    result = run("-A", "nowhere", "worker", option, value)
    assert result.exit_code == EX_USAGE
    assert f"Invalid value for '{option}'" in result.output
