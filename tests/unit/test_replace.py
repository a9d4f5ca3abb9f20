"""``Task.replace``, ``Task.on_replace`` and ``Task.add_to_chord`` on the in-process broker,
stepped through the real message path with ``drain``, and eagerly; and the root and parent
ids signatures and messages carry."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, Signature, chain, chord, group, states
from celeriac.exceptions import ChordError, ImproperlyConfigured
from celeriac.testing import drain


class Tasks:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self.replaced_with: list[Signature] = []
        self.seen: list[tuple[str | None, str | None, str | None]] = []
        self.errbacks: list[str] = []

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        @app.task
        def tsum(values: list[int]) -> int:
            return sum(values)

        @app.task
        def collect(values: list[Any]) -> list[Any]:
            return values

        @app.task(bind=True)
        def becomes(self_: Any, x: int, kind: str) -> Any:
            """Replaces itself with a task, chain or group working on ``x``."""
            replacements = {
                "task": add.s(x, 100),
                "chain": add.s(x, 1) | add.s(10),
                "group": group(add.s(x, 1), add.s(x, 2)),
                "chain-to-group": add.s(x, 0) | group(add.s(1), add.s(2)),
            }
            return self_.replace(replacements[kind])

        @app.task
        def fail(*args: Any) -> None:
            raise ValueError("replacement failed")

        @app.task(bind=True)
        def becomes_failure(self_: Any) -> Any:
            return self_.replace(fail.s())

        @app.task
        def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
            self.errbacks.append(repr(exc))

        @app.task(bind=True)
        def grows(self_: Any, x: int) -> int:
            """A chord member that adds ``x * 10`` to its chord."""
            self_.add_to_chord(add.s(x * 10, 0))
            return x

        @app.task(bind=True)
        def ids(self_: Any) -> list[str | None]:
            request = self_.request
            self.seen.append((request.id, request.root_id, request.parent_id))
            return [request.id, request.root_id, request.parent_id]

        @app.task(bind=True)
        def sends_child(self_: Any) -> str:
            return str(ids.delay().id)

        self.add, self.tsum, self.collect, self.becomes = add, tsum, collect, becomes
        self.fail, self.becomes_failure, self.on_error = fail, becomes_failure, on_error
        self.grows, self.ids, self.sends_child = grows, ids, sends_child


@pytest.fixture
def tasks(app: Celery) -> Tasks:
    return Tasks(app)


def run(app: Celery, result: Any) -> Any:
    while drain(app):
        pass
    return result.get(timeout=1)


# -- replace ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "value"),
    [("task", 105), ("chain", 16), ("group", [6, 7]), ("chain-to-group", [6, 7])],
)
def test_the_callers_result_is_the_replacements(
    app: Celery, tasks: Tasks, kind: str, value: Any
) -> None:
    result = tasks.becomes.delay(5, kind)
    assert run(app, result) == value
    assert result.state == states.SUCCESS


@pytest.mark.parametrize(
    ("kind", "value"),
    [("task", 105), ("chain", 16), ("group", [6, 7]), ("chain-to-group", [6, 7])],
)
def test_eager_replace_returns_the_replacements_value(
    app: Celery, tasks: Tasks, kind: str, value: Any
) -> None:
    assert tasks.becomes.apply((5, kind)).get() == value
    app.conf.task_always_eager = True
    assert tasks.becomes.delay(5, kind).get() == value


def test_the_chain_continues_after_the_replacement(app: Celery, tasks: Tasks) -> None:
    # Given a chain whose middle step replaces itself with a chain
    result = chain(tasks.add.s(1, 1), tasks.becomes.s(kind="chain"), tasks.add.s(1000)).delay()
    # Then the next step gets the replacement's result: ((2 + 1) + 10) + 1000
    assert run(app, result) == 1013
    assert result.parent is not None and result.parent.get(timeout=1) == 13


def test_a_group_replacement_in_a_chain_passes_the_list_on(app: Celery, tasks: Tasks) -> None:
    result = (tasks.add.s(2, 3) | tasks.becomes.s(kind="group") | tasks.collect.s()).delay()
    assert run(app, result) == [6, 7]
    eager = (tasks.add.s(2, 3) | tasks.becomes.s(kind="group") | tasks.collect.s()).apply()
    assert eager.get() == [6, 7]


def test_replacing_in_a_chord_header_keeps_the_chord_together(app: Celery, tasks: Tasks) -> None:
    # Given a chord whose header members replace themselves with a task, a chain, a group
    header = [
        tasks.becomes.s(1, "task"),
        tasks.becomes.s(2, "chain"),
        tasks.add.s(3, 4),
        tasks.becomes.s(3, "group"),
    ]
    result = chord(header, tasks.collect.s()).delay()
    # Then the body waits for every replacement and gets their results in header order
    assert run(app, result) == [101, 13, 7, [4, 5]]


def test_callbacks_move_to_the_replacement(app: Celery, tasks: Tasks) -> None:
    after = tasks.add.s(1)
    after_result = after.freeze()
    result = tasks.becomes.apply_async((1, "chain"), link=after)
    assert run(app, result) == 12
    assert run(app, after_result) == 13


def test_errbacks_move_to_the_replacement(app: Celery, tasks: Tasks) -> None:
    result = tasks.becomes_failure.apply_async(link_error=tasks.on_error.s())
    while drain(app):
        pass
    assert result.state == states.FAILURE
    assert tasks.errbacks == ["ValueError('replacement failed')"]


def test_on_replace_sees_the_replacement_first(app: Celery) -> None:
    from celeriac import Task

    seen: list[Any] = []

    class Watched(Task):  # a base for any task
        def on_replace(self, sig: Signature) -> Any:
            seen.append((sig.task, sig.id))
            return super().on_replace(sig)

    @app.task
    def double(x: int) -> int:
        return 2 * x

    @app.task(bind=True, base=Watched)
    def hands_over(self_: Any, x: int) -> Any:
        return self_.replace(double.s(x))

    result = hands_over.delay(21)
    assert run(app, result) == 42
    assert seen == [(double.name, result.id)]


def test_replace_refuses_what_cannot_take_a_tasks_place(app: Celery, tasks: Tasks) -> None:
    @app.task(bind=True)
    def bad(self_: Any, what: str) -> Any:
        options = {
            "chord-member": tasks.add.s(1, 1).set(chord={"task": "x"}),
            "empty-chain": chain(),
            "not-a-signature": 42,
        }
        return self_.replace(options[what])

    with pytest.raises(ImproperlyConfigured, match="must not be part of a chord"):
        bad.apply(("chord-member",), throw=True)
    with pytest.raises(ImproperlyConfigured, match="empty chain"):
        bad.apply(("empty-chain",), throw=True)
    with pytest.raises(TypeError, match="takes a signature"):
        bad.apply(("not-a-signature",), throw=True)


# -- add_to_chord -------------------------------------------------------------------------
def test_add_to_chord_makes_the_body_wait_for_the_added_task(app: Celery, tasks: Tasks) -> None:
    # Given a chord whose first two members each add a task to it
    result = chord([tasks.grows.s(1), tasks.grows.s(2), tasks.add.s(3, 0)], tasks.collect.s())
    # Then the body gets the added results right after the task that added each
    assert run(app, result.delay()) == [1, 10, 2, 20, 3]


def test_add_to_chord_lazy_returns_the_signature_unsent(app: Celery, tasks: Tasks) -> None:
    sent: list[Any] = []

    @app.task(bind=True)
    def adds_later(self_: Any) -> int:
        sig = self_.add_to_chord(tasks.add.s(5, 5), lazy=True)
        sent.append(sig.id)
        sig.delay()
        return 0

    result = chord([adds_later.s(), tasks.add.s(1, 1)], tasks.collect.s()).delay()
    assert run(app, result) == [0, 10, 2]
    assert app.AsyncResult(sent[0]).get(timeout=1) == 10


def test_add_to_chord_outside_a_chord_says_so(app: Celery, tasks: Tasks) -> None:
    with pytest.raises(ValueError, match="not a member of any chord"):
        tasks.grows.apply((1,), throw=True)


def test_add_to_chord_refuses_a_group(app: Celery, tasks: Tasks) -> None:
    @app.task(bind=True)
    def adds_group(self_: Any) -> int:
        self_.add_to_chord(group(tasks.add.s(1, 1)))
        return 0

    result = chord([adds_group.s()], tasks.collect.s()).delay()
    with pytest.raises((TypeError, ChordError), match="add each member of a group"):
        run(app, result)


# -- root and parent ids --------------------------------------------------------------------
def test_a_call_sent_from_a_task_has_its_root_and_parent(app: Celery, tasks: Tasks) -> None:
    parent = tasks.sends_child.delay()
    child_id = run(app, parent)
    while drain(app):
        pass
    assert tasks.seen == [(child_id, parent.id, parent.id)]
    # From a task run with apply() too
    tasks.seen.clear()
    applied = tasks.sends_child.apply(task_id="applied-1")
    while drain(app):
        pass
    assert tasks.seen == [(applied.get(), "applied-1", "applied-1")]


def test_freeze_sets_root_and_parent_ids(app: Celery, tasks: Tasks) -> None:
    sig = tasks.ids.s()
    result = sig.freeze(root_id="root-1", parent_id="parent-1")
    assert (sig.id, sig.root_id, sig.parent_id) == (result.id, "root-1", "parent-1")
    assert run(app, sig.delay()) == [result.id, "root-1", "parent-1"]
    assert sig.apply().get() == [result.id, "root-1", "parent-1"]


def test_workflows_pass_root_and_parent_ids_on_when_frozen(app: Celery, tasks: Tasks) -> None:
    first, second = tasks.add.s(1, 1), tasks.add.s(2)
    chain(first, second).freeze(root_id="r", parent_id="p")
    assert (first.root_id, first.parent_id, second.root_id, second.parent_id) == (
        "r",
        "p",
        "r",
        None,
    )
    members = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    members.freeze(root_id="r", parent_id="p")
    assert {(m.root_id, m.parent_id) for m in members.tasks} == {("r", "p")}
    made = chord([tasks.add.s(1, 1)], tasks.tsum.s())
    made.freeze(root_id="r")
    assert made.header.tasks[0].root_id == "r" and made.body.root_id == "r"
    sig = tasks.add.s(1, 1)
    sig.id, sig.root_id, sig.parent_id = "i", "r", "p"
    assert sig.options == {"task_id": "i", "root_id": "r", "parent_id": "p"}
