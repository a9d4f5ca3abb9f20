"""The promise behind ``result.on_ready``: fired once, callbacks chained with ``then``,
errors routed to ``on_error``; and the barrier a ResultSet's ``on_ready`` waits on."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac._promise import Barrier, Promise


def test_then_runs_callbacks_once_it_fires_and_at_once_after() -> None:
    p = Promise()
    seen: list[Any] = []
    p.then(seen.append)
    assert seen == [] and not p.ready and p.value is None

    p("value")
    p("again")  # fires once: a later call changes nothing
    assert seen == ["value"] and p.ready and p.value == (("value",), {})
    p.then(lambda v: seen.append(("late", v)))
    assert seen == ["value", ("late", "value")]


def test_then_returns_the_promise_of_the_callbacks_value() -> None:
    p = Promise(args=(2,))
    doubled = p.then(lambda x: x * 2)
    seen: list[int] = []
    doubled.then(seen.append)
    p()
    assert seen == [4] and doubled.value == ((4,), {})


def test_a_callback_that_raises_goes_to_its_on_error_else_to_the_caller() -> None:
    p = Promise()
    errors: list[BaseException] = []
    reached: list[int] = []
    p.then(lambda _: 1 / 0, on_error=errors.append)
    p.then(lambda _: [][1])
    p.then(reached.append)
    with pytest.raises(IndexError):
        p(7)
    assert isinstance(errors[0], ZeroDivisionError) and reached == [7]  # the rest still ran


def test_throw_fails_it_and_reaches_the_callbacks_on_error() -> None:
    p = Promise()
    errors: list[BaseException] = []
    p.then(lambda _: None, on_error=errors.append)
    with pytest.raises(KeyError):
        p.throw(KeyError("gone"))
    assert p.failed and isinstance(p.reason, KeyError) and isinstance(errors[0], KeyError)
    p.then(lambda _: None, on_error=errors.append)  # later: on_error at once
    assert len(errors) == 2
    p("too late")  # failed: not fired
    assert not p.ready


def test_cancel_stops_it_firing() -> None:
    p = Promise()
    seen: list[Any] = []
    child = p.then(seen.append)
    p.cancel()
    p(1)
    assert seen == [] and child.cancelled


def test_bad_arguments_are_refused_clearly() -> None:
    with pytest.raises(TypeError, match="takes a callable"):
        Promise(fun=3)  # the error under test
    with pytest.raises(TypeError, match="then\\(\\) takes a callable"):
        Promise().then(3)  # the error under test


def test_a_barrier_fires_once_every_member_has() -> None:
    first, second, done = Promise(), Promise(), Promise(args=("all",))
    barrier = Barrier(done)
    barrier.add(first)
    barrier.add(second)
    barrier.finalize()
    first(1)
    assert not done.ready
    second(2)
    assert done.ready and done.value == (("all",), {})
