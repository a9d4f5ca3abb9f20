"""``celeriac migrate-queue``'s refusals, before any broker is reached: each names the
problem and the fix, and exits with the usage status (64). The report's text and JSON
are rendered from a tally. The moves themselves: tests/integration/test_migrate_queue*.py.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from celeriac.cli import cli
from celeriac.cli.base import CLIError
from celeriac.cli.migrate_queue import as_document, parse_options, report_lines
from celeriac.exceptions import ImproperlyConfigured
from celeriac.migrate import Problem, SkipReason, Tally, check_urls
from celeriac.migrate.convert import seconds_until

REDIS = "redis://127.0.0.1:6379/15"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["migrate-queue", *args], env={"CELERIAC_APP": ""})
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--from", REDIS, "--to", REDIS], "write the source as kombu+redis://"),
        (["--from", f"kombu+{REDIS}", "--to", f"kombu+{REDIS}"], "--to names kombu's Redis"),
        (["--from", "memory://", "--to", REDIS], "--from must be a broker URL another process"),
        (["--from", f"kombu+{REDIS}", "--to", "localhost"], "--to must be a broker URL"),
        (["--from", "amqp://h/v", "--to", "amqp://guest:pw@h/v"], "--queue celery:celery-native"),
        (["--from", "amqp://h//", "--to", "amqp://h", "-Q", "a,b"], "queue 'a' would be moved"),
        (["--from", f"kombu+{REDIS}", "--to", REDIS, "--from-option", "x"], "write KEY=VALUE"),
        (["--from", f"kombu+{REDIS}", "--to", REDIS, "-Q", ":x"], "write a queue name"),
    ],
)
def test_refusals_name_the_problem_and_the_fix(args: list[str], says: str) -> None:
    code, output = invoke(*args)
    assert code == 64, output
    assert says in output


def test_one_vhost_serves_as_both_sides_only_with_the_queue_renamed() -> None:
    check_urls("amqp://h/v", "amqp://h/v", "celery", {"celery": "celery-native"})
    check_urls("amqp://h/v", "amqp://other/v", "celery", {"celery": "celery"})
    with pytest.raises(ImproperlyConfigured, match="'celery' would be moved onto itself"):
        check_urls("amqp://u:p@h/v", "amqp://h:5672/v", "celery", {"celery": "celery"})


def test_options_read_json_values_and_keep_text() -> None:
    given = ("global_keyprefix=proj:", "visibility_timeout=60", "confirm_publish=true", "a=b=c")
    assert parse_options(given, "--from-option") == {
        "global_keyprefix": "proj:", "visibility_timeout": 60, "confirm_publish": True,
        "a": "b=c",
    }  # fmt: skip
    with pytest.raises(CLIError, match="--to-option '=1': write KEY=VALUE"):
        parse_options(["=1"], "--to-option")


def test_an_eta_still_to_come_is_a_delay_and_one_past_or_unreadable_is_not() -> None:
    now = 1_700_000_000.0
    assert seconds_until("2023-11-14T22:13:30+00:00", now) == pytest.approx(10.0)
    assert seconds_until("2023-11-14T22:13:30", now) == pytest.approx(10.0)  # naive: UTC
    assert seconds_until("2023-11-14T22:13:10+00:00", now) is None
    assert seconds_until("tomorrow", now) is None and seconds_until(None, now) is None


def test_after_a_move_the_report_says_what_the_source_holds() -> None:
    tally = Tally.of({"celery": "celery"})
    tally.queues["celery"].moved, tally.queues["celery"].on_source = 2, 1
    assert report_lines(tally) == [
        "celery: 2 moved; the source queue holds 1 now",
        "Total: 2 message(s) moved, 0 left behind.",
    ]
    assert as_document(tally)["on_source"] == 1


def test_the_report_counts_each_queue_and_names_what_stayed() -> None:
    tally = Tally.of({"celery": "celery", "images": "pictures"}, dry_run=True)
    tally.queues["celery"].moved = 3
    tally.queues["celery"].waiting_for_eta = 1
    tally.queues["celery"].skip(Problem("id-1", SkipReason.UNDECODABLE, "not a task"))
    tally.queues["celery"].on_target = 0
    tally.queues["images"].delayed_on_source = 2
    assert report_lines(tally) == [
        "Dry run: nothing was moved.",
        "celery: 3 would move (1 to wait on the target until their eta), 1 left behind "
        "(1 undecodable); the target queue holds 0 now",
        "  left behind: id-1 (undecodable: not a task)",
        "images -> pictures: 0 would move",
        "  2 delayed message(s) wait on the source until due: run migrate-queue again then",
        "Total: 3 message(s) would move, 1 left behind.",
    ]
    document = json.loads(json.dumps(as_document(tally)))
    assert (document["moved"], document["skipped"], document["delayed_on_source"]) == (3, 1, 2)
    assert document["queues"][0]["problems"] == [
        {"id": "id-1", "reason": "undecodable", "detail": "not a task"}
    ]
    assert document["queues"][1]["target"] == "pictures"
