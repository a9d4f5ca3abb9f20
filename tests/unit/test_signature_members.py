"""The smaller Signature, chain, group and chord members Celery users call: ``partial``,
``replace``, ``reprcall``, ``flatten_links``, the list-option helpers, ``|=``, ``skew``,
``len(group)``, ``unchain_tasks``, chord's length hint and ``AsyncResult``."""

from __future__ import annotations

import json
import pickle
from typing import Any

from celeriac import Celery, Signature, Task, chain, chord, group, signature


def make(app: Celery) -> Any:
    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    return add


def test_partial_and_replace_copy(app: Celery) -> None:
    add = make(app)
    sig = add.s(2).set(queue="maths")
    assert sig.partial((10,)).args == (10, 2)
    copied = sig.replace(args=(1, 1), options={"priority": 3})
    assert (copied.args, copied.options) == ((1, 1), {"priority": 3})
    assert (sig.args, sig.options) == ((2,), {"queue": "maths"}), "the original is unchanged"
    assert sig.replace(kwargs={"y": 5}).kwargs == {"y": 5}


def test_reprcall_shows_the_merged_call(app: Celery) -> None:
    add = make(app)
    assert add.s(2).reprcall(10) == f"{add.name}(10, 2)"
    assert add.s(y=2).reprcall(1) == f"{add.name}(1, y=2)"


def test_flatten_links_walks_callbacks_depth_first(app: Celery) -> None:
    add = make(app)
    first, second, third = add.s(1, 1), add.s(10), add.s(100)
    first.link(second).link(third)
    other = add.s(1000)
    first.link(other)
    assert [s.args for s in first.flatten_links()] == [(1, 1), (10,), (100,), (1000,)]
    assert all(isinstance(s, Signature) for s in first.flatten_links())


def test_list_options_append_once_and_extend(app: Celery) -> None:
    add = make(app)
    sig = add.s(1, 1)
    errback = add.s(0, 0)
    assert sig.append_to_list_option("link_error", errback) is errback
    sig.append_to_list_option("link_error", errback)
    assert sig.options["link_error"] == [errback]
    sig.extend_list_option("link", add.s(1))
    sig.extend_list_option("link", [add.s(2), add.s(3)])
    assert [s.args for s in sig.options["link"]] == [(1,), (2,), (3,)]


def test_in_place_or_chains(app: Celery) -> None:
    add = make(app)
    sig: Any = add.s(1, 1)
    sig |= add.s(2)
    sig |= add.s(3)
    assert isinstance(sig, chain) and [t.args for t in sig.tasks] == [(1, 1), (2,), (3,)]
    app.conf.task_always_eager = True
    assert sig.delay().get() == 7


def test_group_len_skew_and_round_trip(app: Celery) -> None:
    add = make(app)
    members = group(add.s(i, i) for i in range(4))
    assert len(members) == 4 and not group()
    members.skew(start=1, stop=4, step=2)
    assert [m.options["countdown"] for m in members.tasks] == [1, 3, 3, 3]
    again = signature(json.loads(json.dumps(members)), app=app)
    assert isinstance(again, group) and len(again) == 4
    assert len(pickle.loads(pickle.dumps(members))) == 4


def test_unchain_tasks_moves_the_chains_links(app: Celery) -> None:
    add = make(app)
    done, failed = add.s(9), add.s(8)
    steps = chain(add.s(1, 1), add.s(2), link=done, link_error=failed).unchain_tasks()
    assert [s.options.get("link") for s in steps] == [None, [done]]
    assert [s.options.get("link_error") for s in steps] == [[failed], [failed]]


def test_chord_length_hint_counts_header_tasks(app: Celery) -> None:
    add = make(app)
    made = chord([add.s(1, 1), group(add.s(2, 2), add.s(3, 3))], add.s(0))
    assert made.__length_hint__() == 3


def test_async_result_is_the_tasks_result_class_or_the_apps(app: Celery) -> None:
    from celeriac.result import AsyncResult

    class Tracked(AsyncResult[Any]):
        pass

    class TrackedTask(Task[Any, Any]):
        def AsyncResult(self, task_id: str, **kwargs: Any) -> Tracked:
            return Tracked(task_id, app=self.app, **kwargs)

    @app.task(base=TrackedTask)
    def tracked() -> None:
        return None

    assert isinstance(tracked.s().AsyncResult("t-1"), Tracked)
    plain = make(app).s(1, 2).AsyncResult("t-2")
    assert type(plain) is AsyncResult and plain.id == "t-2"
    unknown = signature("not.registered", app=app).AsyncResult("t-3")
    assert type(unknown) is AsyncResult and unknown.app is app
