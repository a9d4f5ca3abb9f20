"""A misspelt name gets the same answer wherever it is given: what was not read, then
``; did you mean '<closest>'?``, warned at the user's own line."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import Celery
from celeriac.config import UnknownSettingWarning


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("names", broker="memory://", set_as_current=False)
    try:
        yield app
    finally:
        app.close()


def _setting(app: Celery) -> None:
    app.conf.update(task_acks_lat=True)


def _annotation(app: Celery) -> None:
    app.conf.task_annotations = {"*": {"task_time_limit": 3}}

    @app.task
    def slow() -> None: ...


def _redis_option(app: Celery) -> None:
    other = Celery(
        "names-redis",
        broker="redis://127.0.0.1:6379/15",
        broker_transport_options={"visibilty_timeout": 30},
        set_as_current=False,
    )
    try:
        other.broker  # noqa: B018 (built here; nothing is sent)
    finally:
        other.close()


@pytest.mark.parametrize(
    ("action", "closest", "at_user_line"),
    [
        (_setting, "task_acks_late", True),
        (_annotation, "time_limit", False),
        (_redis_option, "visibility_timeout", False),
    ],
    ids=["setting", "task annotation", "redis transport option"],
)
def test_an_unknown_name_is_warned_with_the_closest_known_one(
    app: Celery, action: Callable[[Celery], Any], closest: str, at_user_line: bool
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        action(app)
    # Only ours: a ResourceWarning from an earlier test's garbage may land here too.
    [warning] = [w for w in caught if w.category is UnknownSettingWarning]
    assert str(warning.message).endswith(f"; did you mean {closest!r}?")
    if at_user_line:  # the line that gave the name, not a line inside celeriac
        assert warning.filename == __file__


def test_an_unknown_setting_read_as_an_attribute_names_the_closest(app: Celery) -> None:
    with pytest.raises(AttributeError, match=r"'broker_ur'; did you mean 'broker_url'\?$"):
        app.conf.broker_ur  # noqa: B018


def test_a_name_nothing_is_close_to_gets_no_guess(app: Celery) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        app.conf.update(zzzz_qqqq=1)
    [warning] = [w for w in caught if w.category is UnknownSettingWarning]
    assert "celeriac ignores it" in str(warning.message)
    assert "did you mean" not in str(warning.message)
