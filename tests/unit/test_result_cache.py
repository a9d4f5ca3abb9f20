"""``ResultCache``: Celery's ``result_cache_max`` values (-1 off, 0 no limit, N least
recently used), and a bad value named with the fix."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.results.cache import ResultCache


def test_minus_one_keeps_nothing_and_zero_keeps_everything() -> None:
    off, unlimited = ResultCache(-1), ResultCache(0)
    for n in range(100):
        off.put(str(n), {"n": n})
        unlimited.put(str(n), {"n": n})
    assert len(off) == 0 and off.get("1") is None
    assert len(unlimited) == 100 and unlimited.get("1") == {"n": 1}


def test_a_limit_drops_the_record_used_least_recently() -> None:
    cache = ResultCache(2)
    cache.put("a", {"v": 1})
    cache.put("b", {"v": 2})
    assert cache.get("a") == {"v": 1}  # "a" used: "b" is now the oldest
    cache.put("c", {"v": 3})
    assert cache.get("b") is None and cache.get("a") == {"v": 1}


def test_a_bad_setting_is_refused_when_the_store_is_built() -> None:
    app = Celery("cache", broker="memory://", backend="cache+memory://",
                 result_cache_max=-5, set_as_current=False)  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="result_cache_max must be -1"):
        _ = app.backend
