"""Stamping: ``sig.stamp(...)`` and ``StampingVisitor`` over nested canvases, what each
task's message carries (``stamped_headers`` and ``stamps`` headers), and what each task
then reads in ``self.request.stamps``. Real path: memory broker, ``drain``, and trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, chain, chord, group, signals
from celeriac.canvas import Signature
from celeriac.canvas.call_checks import IGNORED_CALL_OPTIONS
from celeriac.canvas.stamping import RESERVED, StampingVisitor
from celeriac.exceptions import InvalidTaskError
from celeriac.messages.call_options import CALL_OPTIONS
from celeriac.messages.validation import check_envelope
from celeriac.testing.drain import drain


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("stamps", broker="memory://", backend="memory://")
    app.seen = {}  # task name[args] -> (stamped_headers, stamps)

    def record(request: Any) -> None:
        key = f"{request.task.rsplit('.', 1)[-1]}{list(request.args)}"
        app.seen[key] = (sorted(request.stamped_headers), dict(request.stamps))

    @app.task(bind=True, name="add")
    def add(self: Any, x: int, y: int) -> int:
        record(self.request)
        return x + y

    @app.task(bind=True, name="total")
    def total(self: Any, values: list[int]) -> int:
        record(self.request)
        return sum(values)

    @app.task(bind=True, name="note")
    def note(self: Any, value: Any) -> Any:
        record(self.request)
        return value

    yield app
    app.close()


def run_all(app: Celery) -> None:
    while drain(app):
        pass


class Named(StampingVisitor):
    """A stamp per task (its name) and one per part of the canvas it is in."""

    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        return {"task_name": sig.task}

    def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any]:
        return {"in_group": True}

    def on_chain_start(self, chain: Signature, **headers: Any) -> dict[str, Any]:
        return {"in_chain": True}

    def on_chord_body(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        return {"chord_body": True}

    def on_callback(self, callback: Signature, **headers: Any) -> dict[str, Any]:
        return {"linked_as": "callback"}

    def on_errback(self, errback: Signature, **headers: Any) -> dict[str, Any]:
        return {"linked_as": "errback"}


def test_stamp_puts_named_stamps_in_the_options_and_the_message(app: Celery) -> None:
    sig = app.tasks["add"].s(1, 2)
    sig.stamp(run="r1", attempt=2)
    assert sig.options["run"] == "r1" and sig.options["attempt"] == 2
    assert sorted(sig.options["stamped_headers"]) == ["attempt", "run"]

    sent: list[dict[str, Any]] = []
    receiver = lambda headers, **_: sent.append(headers)  # noqa: E731
    signals.before_task_publish.connect(receiver, weak=False)
    try:
        sig.apply_async()
    finally:
        signals.before_task_publish.disconnect(receiver)
    assert sorted(sent[0]["stamped_headers"]) == ["attempt", "run"]
    assert sent[0]["stamps"] == {"run": "r1", "attempt": 2}
    assert "run" not in sent[0]  # only under stamps, as Celery's protocol
    check_envelope(sent[0], {})  # the worker accepts them

    run_all(app)
    assert app.seen["add[1, 2]"] == (["attempt", "run"], {"run": "r1", "attempt": 2})


def test_an_unstamped_task_reads_empty_stamps(app: Celery) -> None:
    app.tasks["add"].delay(1, 1)
    run_all(app)
    assert app.seen["add[1, 1]"] == ([], {})


def test_a_visitor_stamps_every_task_of_a_nested_canvas_by_its_part(app: Celery) -> None:
    add, total, note = app.tasks["add"], app.tasks["total"], app.tasks["note"]
    first = add.si(1, 1)
    first.link(note.si("linked"))
    canvas = chain(
        first,
        group(add.si(2, 2), add.si(3, 3)),
        total.s(),
        chord([add.si(4, 4), add.si(5, 5)], total.s()),
    )
    canvas.stamp(Named(), run="r1")
    result = canvas.apply_async()
    run_all(app)

    assert result.get(timeout=5) == 18
    seen = app.seen
    chain_stamps = {"run": "r1", "in_chain": True}
    assert seen["add[1, 1]"][1] == {**chain_stamps, "task_name": "add"}
    assert seen["note['linked']"][1] == {
        **chain_stamps,
        "task_name": "note",
        "linked_as": "callback",
    }
    # the group followed by a task is a chord: its members are in a group
    assert seen["add[2, 2]"][1] == {**chain_stamps, "task_name": "add", "in_group": True}
    assert seen["add[4, 4]"][1] == {**chain_stamps, "task_name": "add", "in_group": True}
    # a chord's body gets what its header's start gave, and on_chord_body's
    body = {**chain_stamps, "task_name": "total", "in_group": True, "chord_body": True}
    assert seen["total[[4, 6]]"][1] == body
    assert seen["total[[8, 10]]"][1] == body
    assert seen["total[[8, 10]]"][0] == sorted(body)


def test_each_start_and_end_is_visited_in_order(app: Celery) -> None:
    calls: list[str] = []

    class Tracing(StampingVisitor):
        def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
            calls.append(f"sig {sig.args}")
            return {}

        def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any]:
            calls.append("group start")
            return {}

        def on_group_end(self, group: Signature, **headers: Any) -> None:
            calls.append("group end")

        def on_chain_start(self, chain: Signature, **headers: Any) -> dict[str, Any]:
            calls.append("chain start")
            return {}

        def on_chain_end(self, chain: Signature, **headers: Any) -> None:
            calls.append("chain end")

        def on_chord_body(self, sig: Signature, **headers: Any) -> dict[str, Any]:
            calls.append("body")
            return {}

    add = app.tasks["add"]
    chain(add.si(1, 1), chord([add.si(2, 2)], add.s(0))).stamp(Tracing())
    assert calls == [
        "chain start",
        "sig (1, 1)",
        "group start",  # a chord's header start is its group's start by default
        "sig (2, 2)",
        "group end",
        "body",
        "sig (0,)",
        "chain end",
    ]


def test_headers_given_to_the_visitor_are_the_stamps_from_above(app: Celery) -> None:
    given: list[dict[str, Any]] = []

    class Echo(StampingVisitor):
        def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
            given.append(headers)
            return {}

        def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any]:
            return {"batch": 7}

    group(app.tasks["add"].si(1, 1)).stamp(Echo(), run="r1")
    assert given == [{"run": "r1", "batch": 7}]


def test_keyword_stamps_win_over_the_visitor_and_over_earlier_stamps(app: Celery) -> None:
    class Mine(StampingVisitor):
        def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
            return {"who": "visitor", "extra": 1}

    sig = app.tasks["add"].s(1, 1)
    sig.stamp(who="first")
    sig.stamp(Mine(), who="second")
    assert (sig.options["who"], sig.options["extra"]) == ("second", 1)

    appended = app.tasks["add"].s(1, 1)
    appended.stamp(who="first")
    appended.stamp(Mine(), append_stamps=True, who="second")
    assert appended.options["who"] == ["second", "visitor", "first"]


def test_dict_stamps_merge_key_by_key(app: Celery) -> None:
    sig = app.tasks["add"].s(1, 1)
    sig.stamp(meta={"owner": "ops", "tier": 1})
    sig.stamp(meta={"tier": 2})
    assert sig.options["meta"] == {"owner": "ops", "tier": 2}


def test_links_get_the_given_stamps_not_the_linked_signature_s_own(app: Celery) -> None:
    note = app.tasks["note"]
    sig = app.tasks["add"].s(1, 1)
    sig.stamp(own="mine")  # stamps of the signature itself, before it was linked
    sig.link(note.s())
    sig.link_error(note.si("failed"))
    sig.stamp_links(run="r1")
    callback, errback = sig.options["link"][0], sig.options["link_error"][0]
    assert (callback.options["run"], errback.options["run"]) == ("r1", "r1")
    assert "own" not in callback.options and "own" not in errback.options
    assert "run" not in sig.options  # stamp_links stamps only the links


def test_a_chord_stamped_without_a_visitor_stamps_its_body_too(app: Celery) -> None:
    add = app.tasks["add"]
    workflow = chord([add.si(1, 1), add.si(2, 2)], app.tasks["total"].s())
    workflow.stamp(run="r1")
    assert all(task.options["run"] == "r1" for task in workflow.tasks)
    assert workflow.body.options["run"] == "r1"


def test_a_group_s_options_passed_down_never_replace_a_member_s_stamps(app: Celery) -> None:
    member = app.tasks["add"].si(1, 1)
    member.stamp(who="member")
    group(member).apply_async(stamped_headers=["who", "run"], who="group", run="r1")
    run_all(app)
    assert app.seen["add[1, 1]"] == (["run", "who"], {"who": "member", "run": "r1"})


def test_a_retry_keeps_the_stamps(app: Celery) -> None:
    @app.task(bind=True, name="flaky", max_retries=1, default_retry_delay=0)
    def flaky(self: Any) -> Any:
        if self.request.retries == 0:
            raise self.retry()
        return dict(self.request.stamps)

    sig = flaky.s()
    sig.stamp(run="r1")
    result = sig.apply_async()
    run_all(app)
    assert result.get(timeout=5) == {"run": "r1"}


def test_eager_calls_see_their_stamps(app: Celery) -> None:
    app.conf.task_always_eager = True
    workflow = chain(app.tasks["add"].s(1, 1), app.tasks["note"].s())
    workflow.stamp(run="eager")
    assert workflow.apply_async().get() == 2
    assert app.seen["note[2]"] == (["run"], {"run": "eager"})


@pytest.mark.parametrize(
    ("stamps", "error"),
    [
        ({"args": 1}, "may not be named 'args'"),
        ({"stamped_headers": 1}, "may not be named 'stamped_headers'"),
        ({"": 1}, "non-empty string"),
    ],
)
def test_bad_stamp_names_are_refused_when_stamping(
    app: Celery, stamps: dict[str, Any], error: str
) -> None:
    with pytest.raises(ValueError, match=error):
        app.tasks["add"].s(1, 1).stamp(**stamps)


def test_a_stamp_named_like_a_call_option_is_refused(app: Celery) -> None:
    # Given when stamping (it would change the call: a "queue" stamp would route it)
    with pytest.raises(ValueError, match="may not be named 'queue'"):
        app.tasks["add"].s(1, 1).stamp(queue="elsewhere")
    # and when sent with the options written by hand
    with pytest.raises(ValueError, match="named like a call option"):
        app.tasks["add"].apply_async((1, 1), stamped_headers=["queue"], queue="elsewhere")


def test_every_call_option_is_a_reserved_stamp_name() -> None:
    assert CALL_OPTIONS | IGNORED_CALL_OPTIONS <= RESERVED


def test_a_visitor_that_returns_no_dict_is_refused(app: Celery) -> None:
    class Wrong(StampingVisitor):
        def on_signature(self, sig: Signature, **headers: Any) -> Any:
            return ["not", "a", "dict"]

    with pytest.raises(TypeError, match=r"Wrong.on_signature must return a dict"):
        app.tasks["add"].s(1, 1).stamp(Wrong())


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"stamped_headers": "run"}, "stamped_headers"),
        ({"stamped_headers": ["run", 3]}, "stamped_headers"),
        ({"stamps": ["run"]}, "stamps"),
    ],
)
def test_malformed_stamp_headers_are_refused_by_the_worker(
    headers: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidTaskError, match=field):
        check_envelope(headers, {})
