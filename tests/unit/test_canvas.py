"""Canvas on the in-process broker: signatures, chain, group, chord and their results,
stepped through the real message path with ``drain`` (and eagerly, for comparison)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from celeriac import (
    Celery,
    GroupResult,
    ResultSet,
    Signature,
    chain,
    chord,
    chunks,
    group,
    signature,
    states,
    xmap,
)
from celeriac.exceptions import ChordError, ImproperlyConfigured
from celeriac.testing import drain


class Tasks:
    def __init__(self, app: Celery) -> None:
        self.app = app
        self.errbacks: list[tuple[str | None, str]] = []
        self.body_runs = 0

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        @app.task
        def sub(x: int, y: int) -> int:
            return x - y

        @app.task
        def tsum(values: list[int]) -> int:
            self.body_runs += 1
            return sum(values)

        @app.task
        def fail(*args: Any) -> None:
            raise ValueError(f"bad {args}")

        @app.task
        def on_error(request: Any, exc: BaseException, traceback: str | None) -> None:
            self.errbacks.append((request.id, repr(exc)))

        self.add, self.sub, self.tsum, self.fail, self.on_error = add, sub, tsum, fail, on_error


@pytest.fixture
def tasks(app: Celery) -> Tasks:
    return Tasks(app)


def run(app: Celery, result: Any) -> Any:
    """Step every message through the real path until nothing is left; the values."""
    while drain(app):
        pass
    return result.get(timeout=1)


# -- signatures -----------------------------------------------------------------------------
def test_partial_args_go_first_as_in_celery(app: Celery, tasks: Tasks) -> None:
    # One might expect "appended"; Celery puts call-time args before the signature's own,
    # which is what makes chain's "result becomes the first argument" work.
    assert run(app, tasks.sub.s(2).delay(10)) == 8
    assert run(app, tasks.sub.s(2).apply_async((10,))) == 8
    assert tasks.sub.s(y=3).clone(args=(10,)).kwargs == {"y": 3}


def test_immutable_signature_ignores_call_args(app: Celery, tasks: Tasks) -> None:
    assert run(app, tasks.sub.si(5, 1).delay(100)) == 4


def test_set_chains_and_options_reach_the_message(app: Celery, tasks: Tasks) -> None:
    sig = tasks.add.s(2, 2).set(countdown=30).set(expires=60, queue="other")
    assert isinstance(sig, Signature)
    assert sig.options == {"countdown": 30, "expires": 60, "queue": "other"}
    sig.delay()
    assert app.broker.delayed_count("other") == 1


def test_signatures_round_trip_through_json_as_their_own_kind(tasks: Tasks) -> None:
    forms = [
        tasks.add.s(1, 2).set(queue="q"),
        tasks.add.s(1) | tasks.add.s(2),
        group(tasks.add.s(i, i) for i in range(3)),
        chord([tasks.add.s(1, 1), tasks.add.s(2, 2)], tasks.tsum.s()),
        tasks.add.map([1, 2]),
        tasks.add.chunks([(1, 1)] * 4, 2),
    ]
    for form in forms:
        wire = json.loads(json.dumps(form))
        back = signature(wire)
        assert type(back) is type(form) and json.loads(json.dumps(back)) == wire, form


def test_pipe_builds_chains_and_group_pipe_task_is_a_chord(tasks: Tasks) -> None:
    assert isinstance(tasks.add.s(1, 1) | tasks.add.s(2), chain)
    three = tasks.add.s(1, 1) | tasks.add.s(2) | tasks.add.s(3)
    assert isinstance(three, chain) and len(three.tasks) == 3
    upgraded = group(tasks.add.s(1, 1), tasks.add.s(2, 2)) | tasks.tsum.s()
    assert isinstance(upgraded, chord)


def test_link_and_link_error_on_plain_tasks(app: Celery, tasks: Tasks) -> None:
    callback = tasks.add.s(10)
    callback_result = callback.freeze()
    tasks.add.apply_async((1, 2), link=callback)
    assert run(app, callback_result) == 13
    failing = tasks.fail.apply_async((1,), link_error=tasks.on_error.s())
    while drain(app):
        pass
    assert tasks.errbacks == [(failing.id, "ValueError('bad (1,)')")]


# -- workflows: worker path and eager path give the same results ---------------------------
FORMS: dict[str, Callable[[Tasks], Any]] = {
    "tutorial chain": lambda t: chain(t.add.s(2, 2), t.add.s(4), t.add.s(8)),
    "tutorial pipe": lambda t: t.add.s(2, 2) | t.add.s(4) | t.add.s(8),
    "immutable step": lambda t: t.add.s(1, 1) | t.add.si(5, 5) | t.sub.s(1),
    "group": lambda t: group(t.add.s(i, i) for i in range(5)),
    "chord": lambda t: chord([t.add.s(i, i) for i in range(5)], t.tsum.s()),
    "group | task": lambda t: group(t.add.s(i, 1) for i in range(3)) | t.tsum.s(),
    "group in chain": lambda t: chain(t.add.s(1, 1), group(t.add.s(1), t.add.s(2)), t.tsum.s()),
    "chain ending in group": lambda t: chain(t.add.s(1, 1), group(t.add.s(1), t.sub.s(2))),
    "chain in group": lambda t: group(t.add.s(1, 1) | t.add.s(1), t.add.s(2, 2) | t.sub.s(1)),
    "chord in chain": lambda t: chain(
        t.add.s(1, 1), chord([t.add.s(1), t.add.s(2)], t.tsum.s()), t.add.s(100)
    ),
    "chain as chord body": lambda t: chord([t.add.s(1, 1), t.add.s(2, 2)], t.tsum.s() | t.sub.s(1)),
    "group of chords": lambda t: group(
        chord([t.add.s(i, j) for j in range(3)], t.tsum.s()) for i in range(2)
    ),
    "chain in chord header": lambda t: chord(
        [t.add.s(1, 1) | t.add.s(1), t.add.s(5, 5)], t.tsum.s()
    ),
    "chord | task": lambda t: chord([t.add.s(1, 1)], t.tsum.s()) | t.add.s(7),
    "empty chord header": lambda t: chord([], t.tsum.s()),
    "map": lambda t: t.add.starmap([(1, 2), (3, 4)]),
    "chunks": lambda t: t.add.chunks([(i, i) for i in range(5)], 2),
    "xmap": lambda t: xmap(t.tsum.s(), [[1, 2], [3]]),
}
EXPECTED = {
    "tutorial chain": 16,
    "tutorial pipe": 16,
    "immutable step": 9,
    "group": [0, 2, 4, 6, 8],
    "chord": 20,
    "group | task": 6,
    "group in chain": 7,
    "chain ending in group": [3, 0],
    "chain in group": [3, 3],
    "chord in chain": 107,
    "chain as chord body": 5,
    "group of chords": [3, 6],
    "chain in chord header": 13,
    "chord | task": 9,
    "empty chord header": 0,
    "map": [3, 7],
    "chunks": [[0, 2], [4, 6], [8]],
    "xmap": [3, 3],
}


@pytest.mark.parametrize("name", list(FORMS))
def test_each_form_gives_celerys_result_on_the_worker_path(
    app: Celery, tasks: Tasks, name: str
) -> None:
    assert run(app, FORMS[name](tasks).apply_async()) == EXPECTED[name]


@pytest.mark.parametrize("name", list(FORMS))
def test_each_form_gives_the_same_result_eagerly(app: Celery, tasks: Tasks, name: str) -> None:
    app.conf.task_always_eager = True
    assert FORMS[name](tasks).apply_async().get() == EXPECTED[name]
    assert FORMS[name](tasks).apply().get() == EXPECTED[name]
    assert app.broker.queue_length("celery") == 0


def test_calling_a_workflow_sends_it_as_in_the_tutorial(app: Celery, tasks: Tasks) -> None:
    assert run(app, chain(tasks.add.s(2, 2), tasks.add.s(4), tasks.add.s(8))()) == 16
    assert run(app, (tasks.add.s(2, 2) | tasks.add.s(4) | tasks.add.s(8))()) == 16
    assert run(app, group(tasks.add.si(n, n) for n in range(3))()) == [0, 2, 4]
    assert run(app, chord([tasks.add.s(1, 1)])(tasks.tsum.s())) == 2


def test_a_signature_can_be_applied_twice(app: Celery, tasks: Tasks) -> None:
    workflow = chord([tasks.add.s(1, 1)], tasks.tsum.s())
    first, second = workflow(), workflow()
    assert first.id != second.id
    assert (run(app, first), run(app, second)) == (2, 2)


def test_a_group_sent_twice_leaves_its_members_unfrozen(app: Celery, tasks: Tasks) -> None:
    members = [tasks.add.s(1, 1), tasks.add.s(2, 2).set(countdown=0), chain(tasks.add.s(3, 3))]
    workflow = group(members)
    first, second = workflow.apply_async(), workflow.apply_async()
    assert {r.id for r in first.results}.isdisjoint(r.id for r in second.results)
    assert [m.options.get("task_id") for m in workflow.tasks] == [None, None, None]
    assert workflow.tasks[1].options == {"countdown": 0}
    assert (run(app, first), run(app, second)) == ([2, 4, 6], [2, 4, 6])


# -- results --------------------------------------------------------------------------------
def test_chain_results_link_to_their_parents(app: Celery, tasks: Tasks) -> None:
    result = chain(tasks.add.s(1, 1), tasks.add.s(1), tasks.add.s(1))()
    assert run(app, result) == 4
    assert result.parent.get(timeout=1) == 3 and result.parent.parent.get(timeout=1) == 2


def test_group_result_api(app: Celery, tasks: Tasks) -> None:
    result = group(tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(2, 2))()
    assert isinstance(result, GroupResult) and len(result) == 3
    assert not result.ready() and result.completed_count() == 0
    while drain(app):
        pass
    assert result.ready() and result.failed() and not result.successful()
    assert result.completed_count() == 2
    values = result.get(timeout=1, propagate=False)
    assert values[0] == 2 and isinstance(values[1], ValueError) and values[2] == 4
    with pytest.raises(ValueError, match="bad"):
        result.join(timeout=1)


def test_group_result_saves_and_restores_by_id(app: Celery, tasks: Tasks) -> None:
    inner = group(tasks.add.s(1, 1), tasks.add.s(2, 2))
    result = group(tasks.add.s(0, 1), inner)()
    while drain(app):
        pass
    result.save()
    restored = GroupResult.restore(result.id, app=app)
    assert restored is not None and restored == result
    assert restored.get(timeout=1) == [1, [2, 4]]
    restored.delete()
    assert GroupResult.restore(result.id, app=app) is None


def test_group_get_times_out_as_a_whole(app: Celery, tasks: Tasks) -> None:
    from celeriac.exceptions import TimeoutError

    result = group(tasks.add.s(1, 1), tasks.add.s(2, 2))()
    with pytest.raises(TimeoutError):
        result.get(timeout=0.05)


def test_group_is_published_in_one_round_trip(
    app: Celery, tasks: Tasks, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    publish_many = app.broker.publish_many
    monkeypatch.setattr(app.broker, "publish", lambda m: calls.append(1))
    monkeypatch.setattr(
        app.broker, "publish_many", lambda ms: (calls.append(len(ms)), publish_many(ms))
    )
    group(tasks.add.s(i, i) for i in range(50))()
    assert calls == [50]
    assert app.broker.queue_length("celery") == 50


# -- failures -------------------------------------------------------------------------------
def test_failed_chain_step_fails_the_rest_instead_of_leaving_them_pending(
    app: Celery, tasks: Tasks
) -> None:
    result = chain(tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(1), tasks.add.s(1))()
    while drain(app):
        pass
    with pytest.raises(ValueError, match="bad"):
        result.get(timeout=1)
    assert result.parent.state == states.FAILURE
    assert result.parent.parent.parent.get(timeout=1) == 2


def test_failed_header_task_fails_the_chord_once_and_never_runs_the_body(
    app: Celery, tasks: Tasks
) -> None:
    body = tasks.tsum.s().on_error(tasks.on_error.s())
    result = chord([tasks.add.s(1, 1), tasks.fail.s(), tasks.add.s(2, 2)], body)()
    while drain(app):
        pass
    with pytest.raises(ChordError, match=r"Dependency .* raised ValueError"):
        result.get(timeout=1)
    assert tasks.body_runs == 0
    assert len(tasks.errbacks) == 1 and tasks.errbacks[0][0] == result.id
    assert "ChordError" in tasks.errbacks[0][1]


def test_chord_failure_is_the_same_eagerly(app: Celery, tasks: Tasks) -> None:
    app.conf.task_always_eager = True
    body = tasks.tsum.s().on_error(tasks.on_error.s())
    result = chord([tasks.add.s(1, 1), tasks.fail.s()], body)()
    assert result.state == states.FAILURE and isinstance(result.result, ChordError)
    assert tasks.body_runs == 0 and len(tasks.errbacks) == 1


def test_failed_chord_in_a_chain_fails_what_follows(app: Celery, tasks: Tasks) -> None:
    result = chain(chord([tasks.fail.s()], tasks.tsum.s()), tasks.add.s(1))()
    while drain(app):
        pass
    with pytest.raises(ChordError):
        result.get(timeout=1)


def test_header_tasks_store_results_even_when_results_are_ignored(app: Celery) -> None:
    @app.task(ignore_result=True)
    def quiet(x: int) -> int:
        return x

    @app.task
    def total(values: list[int]) -> int:
        return sum(values)

    assert run(app, chord([quiet.s(1), quiet.s(2)], total.s())()) == 3


def test_chunks_needs_a_positive_size(tasks: Tasks) -> None:
    with pytest.raises(ValueError, match="positive"):
        chunks(tasks.add.s(), [(1, 1)], 0)


def test_a_chord_without_a_result_backend_fails_at_call_time() -> None:
    app = Celery("nobackend", broker="memory://")
    try:

        @app.task
        def add(x: int, y: int) -> int:
            return x + y

        with pytest.raises(ImproperlyConfigured, match="chord needs a result backend"):
            chord([add.s(1, 1)], add.s(1)).apply_async()
        assert app.broker.queue_length("celery") == 0
    finally:
        app.close()


def test_result_set_membership(app: Celery) -> None:
    first, second = app.AsyncResult("a"), app.AsyncResult("b")
    results = ResultSet([first])
    results.add(second)
    results.add(second)
    assert list(results) == [first, second] and len(results) == 2
    results.discard("a")
    results.discard("missing")
    assert results.results == [second]
    results.update([first])
    assert results[1] == first
    results.clear()
    assert len(results) == 0


def test_revoking_a_group_revokes_every_member(app: Celery, tasks: Tasks) -> None:
    result = group(tasks.add.s(1, 1), group(tasks.add.s(2, 2), tasks.add.s(3, 3)))()
    result.revoke()
    revoked = set(app.broker.revoked_ids())
    assert {r.id for r in result.results[1].results} | {result.results[0].id} <= revoked
