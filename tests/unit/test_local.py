"""``celeriac.local``: Proxy forwards everything to what its function returns at each
use; PromiseProxy evaluates once; maybe_evaluate and try_import."""

from __future__ import annotations

import json
import pickle
from typing import Any

import pytest

from celeriac import Celery, current_app, current_task
from celeriac.local import PromiseProxy, Proxy, maybe_evaluate, try_import


class Box:
    """A target with a docstring."""

    def __init__(self, items: list[int]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Any:
        return iter(self.items)

    def total(self) -> int:
        return sum(self.items)


def test_a_proxy_forwards_to_what_its_function_returns_at_each_use() -> None:
    target = {"box": Box([1, 2])}
    box: Any = Proxy(lambda: target["box"])

    assert box.total() == 3 and len(box) == 2 and list(box) == [1, 2] and bool(box)
    assert isinstance(box, Box) and box._get_current_object() is target["box"]
    assert box.__doc__ == "A target with a docstring." and box.__module__ == __name__
    target["box"] = Box([])  # swapped: the proxy follows
    assert box.total() == 0 and not box and repr(box) == repr(target["box"])
    box.label = "set through"  # attributes are set and deleted on the target
    assert target["box"].label == "set through" and box.__dict__["label"] == "set through"
    del box.label
    assert not hasattr(target["box"], "label")


def test_operators_comparisons_and_calls_reach_the_target() -> None:
    five: Any = Proxy(lambda: 5)
    assert (five + 1, five - 1, five * 2, five / 2, five // 2, five % 2, five**2) == (
        6, 4, 10, 2.5, 2, 1, 25,
    )  # fmt: skip
    assert (-five, abs(five), ~five, int(five), float(five)) == (-5, 5, -6, 5, 5.0)
    assert [0] * five == [0] * 5  # __index__
    assert five == 5 and five != 4 and five < 6 and five <= 5 and five > 4 and five >= 5
    assert hash(five) == hash(5) and str(five) == "5" and f"{five}" == "5"
    words: Any = Proxy(dict, kwargs={"a": 1})
    assert words["a"] == 1 and "a" in words and len(words) == 1
    shout: Any = Proxy(lambda: str.upper, name="shout")
    assert shout("hi") == "HI" and shout.__name__ == "shout"
    assert pickle.loads(pickle.dumps(Proxy(lambda: [1, 2]))) == [1, 2]


def test_the_class_keeps_its_own_doc_and_module() -> None:
    assert Proxy.__module__ == "celeriac.local" and "Stands for" in str(Proxy.__doc__)
    assert PromiseProxy.__doc__ is not None and "once" in PromiseProxy.__doc__


def test_a_proxy_needs_a_callable() -> None:
    with pytest.raises(TypeError, match="takes a callable"):
        Proxy(42)  # the error under test


def test_a_promise_proxy_evaluates_once_then_keeps_the_object() -> None:
    made: list[Box] = []

    def make() -> Box:
        made.append(Box([len(made)]))
        return made[-1]

    box: Any = PromiseProxy(make)
    then_seen: list[str] = []
    box.__then__(then_seen.append, "evaluated")
    assert not box.__evaluated__() and made == [] and then_seen == []

    assert box.total() == 0 and box.total() == 0
    assert len(made) == 1 and box.__evaluated__() and then_seen == ["evaluated"]
    assert maybe_evaluate(box) is made[0] and box.__maybe_evaluate__() is made[0]
    box.__then__(then_seen.append, "at once")  # already evaluated: runs now
    assert then_seen == ["evaluated", "at once"]


def test_maybe_evaluate_returns_a_plain_object_as_it_is() -> None:
    plain = object()
    assert maybe_evaluate(plain) is plain
    assert maybe_evaluate(PromiseProxy(lambda: 7)) == 7


def test_try_import_returns_the_module_or_the_default() -> None:
    assert try_import("json") is json
    assert try_import("celeriac_no_such_module") is None
    assert try_import("celeriac_no_such_module", default="fallback") == "fallback"


def test_current_app_and_current_task_are_local_proxies() -> None:
    app = Celery("local-proxies", broker="memory://", backend="cache+memory://")
    seen: dict[str, Any] = {}

    @app.task
    def probe() -> None:
        seen["task"] = current_task._get_current_object()
        seen["app"] = current_app._get_current_object()

    assert type(current_app) is Proxy and type(current_task) is Proxy
    assert not current_task  # no task running
    probe.apply()
    assert seen == {"task": probe, "app": app}
