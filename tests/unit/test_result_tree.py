"""The results a task sent (``children``), the walk over them (``iterdeps``, ``collect``,
``build_graph``), and the handle's promise-like members (``then``, ``throw``,
``maybe_throw``, ``get(follow_parents=...)``)."""

from __future__ import annotations

import io
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.exceptions import IncompleteStream
from celeriac.result import AsyncResult, GroupResult, ResultSet, result_from_tuple
from celeriac.testing import drain


@pytest.fixture
def fan_out(app: Celery) -> Any:
    """``fan_out(n)`` sends ``square(i)`` for each i and a group of two ``square`` calls."""

    @app.task
    def square(i: int) -> int:
        return i * i

    @app.task
    def fan_out(n: int) -> str:
        for i in range(n):
            square.delay(i)
        group(square.s(10), square.s(11)).delay()
        return "sent"

    return fan_out


def test_children_are_the_calls_a_task_sent(app: Celery, fan_out: Any) -> None:
    result = fan_out.delay(2)
    assert result.children is None  # nothing stored yet

    drain(app)

    first, second, sent_group = app.AsyncResult(result.id).children
    assert isinstance(first, AsyncResult) and isinstance(sent_group, GroupResult)
    assert (first.get(timeout=1), second.get(timeout=1)) == (0, 1)
    assert sent_group.get(timeout=1) == [100, 121]
    assert first.children == []  # it sent nothing


def test_collect_walks_every_result_below(app: Celery, fan_out: Any) -> None:
    result = fan_out.delay(2)
    drain(app)

    values = [value for _, value in app.AsyncResult(result.id).collect(timeout=1)]
    assert values == ["sent", 0, 1, [100, 121], 100, 121]
    leaves = [v for r, v in app.AsyncResult(result.id).collect() if not r.children]
    assert leaves == [0, 1, 100, 121]


def test_iterdeps_stops_at_a_task_that_has_not_finished(app: Celery, fan_out: Any) -> None:
    result = fan_out.delay(1)
    with pytest.raises(IncompleteStream, match="intermediate=True"):
        list(result.iterdeps())
    assert [node for _, node in result.iterdeps(intermediate=True)] == [result]


def test_build_graph_links_each_result_to_what_it_sent(app: Celery, fan_out: Any) -> None:
    result = fan_out.delay(1)
    drain(app)

    graph = app.AsyncResult(result.id).graph
    [child, sent_group] = graph[result]
    assert len(graph) == 5 and graph.topsort()[0] == result
    dot = io.StringIO()
    graph.to_dot(dot)
    assert f'"{result.id}" -> "{child.id}"' in dot.getvalue()
    assert sent_group in graph


def test_trail_off_or_add_to_parent_false_records_no_children(app: Celery) -> None:
    @app.task
    def leaf() -> None:
        return None

    @app.task(trail=False)
    def quiet() -> None:
        leaf.delay()

    @app.task
    def detached() -> None:
        leaf.apply_async(add_to_parent=False)
        group(leaf.s()).apply_async(add_to_parent=False)

    results = [quiet.delay(), detached.delay()]
    drain(app)
    assert [app.AsyncResult(r.id).children for r in results] == [[], []]


def test_as_tuple_round_trips_parents_and_groups(app: Celery) -> None:
    parent = app.AsyncResult("a")
    child = app.AsyncResult("b", parent=parent)
    nested = GroupResult("g", [child, app.AsyncResult("c")], app=app)

    rebuilt = result_from_tuple(nested.as_tuple(), app)
    assert isinstance(rebuilt, GroupResult) and rebuilt.id == "g"
    assert rebuilt.results[0].parent.id == "a"
    assert child.as_list() == ["b", "a"]


def test_then_runs_when_the_handle_sees_the_task_finished(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    seen: list[Any] = []
    result = add.delay(1, 2)
    result.then(lambda r: seen.append(r.result))
    assert seen == []
    drain(app)
    assert result.get(timeout=1) == 3 and seen == [3]
    result.then(lambda r: seen.append("late"))  # already finished: at once
    assert seen == [3, "late"]


def test_throw_and_maybe_throw_raise_the_task_error(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise KeyError("gone")

    result = boom.delay()
    assert result.maybe_throw() is None  # not finished: nothing to raise, no wait
    drain(app)

    seen: list[str] = []
    result.then(lambda r: seen.append(r.state))
    with pytest.raises(KeyError, match="gone"):
        result.maybe_reraise()
    assert seen == ["FAILURE"]  # on_ready fires for a failure too, before the raise
    assert result.on_ready.failed and isinstance(result.on_ready.reason, KeyError)
    assert isinstance(result.maybe_throw(propagate=False), KeyError)


def test_get_raises_a_failed_parent_first(app: Celery) -> None:
    @app.task
    def boom() -> None:
        raise ValueError("first step")

    @app.task
    def fine() -> int:
        return 1

    parent = boom.delay()
    child = fine.delay()
    child.parent = parent
    drain(app)

    with pytest.raises(ValueError, match="first step"):
        child.get(timeout=1)
    assert child.get(timeout=1, follow_parents=False) == 1


def test_result_set_members_celery_has(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    results = ResultSet([add.delay(1, 1), add.delay(2, 2)], app=app)
    fired: list[ResultSet] = []
    results.then(fired.append)
    drain(app)

    assert [meta["result"] for _, meta in results.iter_native(timeout=1)] == [2, 4]
    assert fired == [results]
    assert results.backend is app.backend and results.supports_native_join
    results.maybe_throw()  # nothing failed


def test_link_callbacks_and_the_next_chain_step_are_children(app: Celery) -> None:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    linked = add.apply_async((2, 2), link=add.s(16))
    chained = (add.s(1, 1) | add.s(10)).delay()
    while drain(app):
        pass

    [callback] = app.AsyncResult(linked.id).children
    assert callback.get(timeout=1) == 20  # the id recorded is the id it ran with
    [following] = app.AsyncResult(chained.parent.id).children
    assert following == chained and following.get(timeout=1) == 12
