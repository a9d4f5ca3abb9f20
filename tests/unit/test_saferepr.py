"""``argsrepr``/``kwargsrepr``: Celery's bounded repr of a call's arguments, cut to 1024
characters and ``task_repr_maxlevels`` nestings, or the caller's own text."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.messages import saferepr as saferepr_module
from celeriac.messages.saferepr import saferepr
from tests.conftest import take_messages


@pytest.mark.parametrize(
    ("value", "maxlen", "maxlevels", "shown"),
    [
        ((1, "a", None, 2.5), None, 3, "(1, 'a', None, 2.5)"),
        (("it's",), None, 3, "('it\\'s',)"),
        (([[[[1]]]],), None, 3, "([[[...]]],)"),
        ({"a": {"b": {"c": {"d": 1}}}}, None, 3, "{'a': {'b': {'c': {...}}}}"),
        ([[[[1]]]], None, 0, "[[[[1]]]]"),  # 0: no limit
        # Celery's output exactly, its separator before the ", ..." included
        ((1, 2, 3, 4, 5), 6, 3, "(1, 2, , ...)"),
        ((1, 2, 3, 4, 5), 5, 3, "(1, 2..., ...)"),
        (("one two three four",), 10, 3, "('one two...',)"),
        ([[1, 2, 3], [4, 5]], 6, 3, "[[1, 2..., ...]]"),
        ((frozenset({1}), set()), None, 3, "(frozenset({1}), set())"),
        ((b"raw", b"\xff"), None, 3, "(b'raw', b'ff')"),
    ],
)  # fmt: skip
def test_saferepr_cuts_by_length_and_by_depth_as_celery_does(
    value: object, maxlen: int | None, maxlevels: int, shown: str
) -> None:
    assert saferepr(value, maxlen, maxlevels) == shown


def _flat_values() -> list[object]:
    """Flat containers of every kind of item the short path takes or refuses."""
    items: list[object] = [0, -7, 2**70, 1.5, float("nan"), float("inf"), 1e16, True, None,
                           "", "a b", "été", "it's", "back\\slash", "line\nfeed", "tab\t",
                           b"raw", 3j, (1,), [], {}]  # fmt: skip
    values: list[object] = [(), [], {}]
    for n in range(len(items)):
        window = items[n : n + 3]
        values += [tuple(window), list(window), (window[0],)]
        values.append({f"k{i}": item for i, item in enumerate(window)})
        values.append({i: item for i, item in enumerate(window)})
    return values


@pytest.mark.parametrize("maxlevels", [0, 1, 3])
@pytest.mark.parametrize("maxlen", [None, 1, 5, 9, 12, 1024])
def test_the_short_path_for_flat_arguments_writes_what_the_walk_writes(
    maxlen: int | None, maxlevels: int
) -> None:
    for value in _flat_values():
        walked = saferepr_module._walked(value, maxlen, maxlevels)
        assert saferepr(value, maxlen, maxlevels) == walked, value


def test_a_value_that_contains_itself_is_shown_once() -> None:
    loop: list[object] = [1]
    loop.append(loop)
    assert saferepr(loop) == f"[1, <Recursion on list with id={id(loop)}>]"


def headers(app: Celery) -> dict[str, object]:
    [(message, _)] = take_messages(app)
    return message.headers


def test_messages_show_arguments_to_task_repr_maxlevels_and_1024_characters() -> None:
    app = Celery("repr", broker="memory://", task_repr_maxlevels=1, set_as_current=False)
    app.send_task("proj.add", ([[1]], "x" * 5000), {"deep": {"er": 1}})
    shown = headers(app)
    # the string gets what is left of the 1024 characters after "([...], "
    assert shown["argsrepr"] == "([...], '" + "x" * 1016 + "...')"
    assert shown["kwargsrepr"] == "{'deep': {...}}"


def test_the_default_shows_three_levels() -> None:
    app = Celery("repr", broker="memory://", set_as_current=False)
    app.send_task("proj.add", ([[[[1]]]],))
    assert headers(app)["argsrepr"] == "([[[...]]],)"


def test_argsrepr_and_kwargsrepr_options_replace_the_shown_arguments() -> None:
    # Celery's way to keep a secret out of events and the dashboard
    app = Celery("repr", broker="memory://", set_as_current=False)
    app.send_task("proj.login", ("alice", "s3cret"), argsrepr="('alice', '***')",
                  kwargsrepr="{}")  # fmt: skip
    shown = headers(app)
    assert shown["argsrepr"] == "('alice', '***')" and shown["kwargsrepr"] == "{}"
    with pytest.raises(TypeError, match="argsrepr is the text shown"):
        app.send_task("proj.login", ("alice",), argsrepr=("alice",))
