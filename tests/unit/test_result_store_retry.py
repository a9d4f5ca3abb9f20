"""``result_backend_always_retry`` and its limits: result store calls that failed on a
lost connection are repeated with backoff, in the result store's base class."""

from __future__ import annotations

import math

import pytest

from celeriac import Celery, states
from celeriac.exceptions import BackendConnectionError, BackendError, ImproperlyConfigured
from celeriac.results.memory import MemoryBackend
from celeriac.results.retry import StoreRetry


class Flaky(MemoryBackend):
    """A memory store whose next ``outages`` reads and writes find it unreachable."""

    def __init__(self, outages: int, error: type[Exception] = BackendConnectionError) -> None:
        super().__init__()
        self.outages, self.error, self.calls = outages, error, 0

    def _fail(self) -> None:
        self.calls += 1
        if self.outages:
            self.outages -= 1
            raise self.error("the store went away")

    def _get(self, key: str) -> bytes | None:
        self._fail()
        return super()._get(key)

    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        self._fail()
        super()._set(key, value, ttl, ready=ready)


FAST = StoreRetry(always=True, base_sleep_ms=0, max_sleep_ms=0)


def test_off_by_default_a_lost_connection_is_raised_at_once() -> None:
    store = Flaky(outages=1)
    with pytest.raises(BackendConnectionError):
        store.get_task_meta("t1")
    assert store.calls == 1


def test_on_reads_and_writes_are_repeated_until_the_store_answers() -> None:
    store = Flaky(outages=3)
    store.retry = FAST
    store.store_result("t1", 42, states.SUCCESS)
    assert store.calls == 4
    store.outages = 2
    assert store.get_task_meta("t1")["result"] == 42
    assert store.calls == 7


def test_the_limit_raises_the_last_error(caplog: pytest.LogCaptureFixture) -> None:
    store = Flaky(outages=10)
    store.retry = StoreRetry(always=True, max_retries=2, base_sleep_ms=0)
    with pytest.raises(BackendConnectionError, match="went away"):
        store.get_task_meta("t1")
    assert store.calls == 3  # the call and two retries
    retries = [r.getMessage() for r in caplog.records if r.name == "celeriac.results"]
    assert len(retries) == 2 and "get_task_meta" in retries[0] and "1 more" in retries[0]


def test_other_errors_are_answers_and_not_retried() -> None:
    store = Flaky(outages=1, error=BackendError)
    store.retry = FAST
    with pytest.raises(BackendError):
        store.get_task_meta("t1")
    assert store.calls == 1


def test_the_pause_grows_exponentially_up_to_the_cap() -> None:
    policy = StoreRetry(always=True, base_sleep_ms=10, max_sleep_ms=50)
    assert all(0 <= policy.pause(1) <= 0.020 for _ in range(50))
    assert all(0 <= policy.pause(8) <= 0.050 for _ in range(50))
    assert max(policy.pause(8) for _ in range(200)) > 0.020  # full jitter, capped at 50 ms


def test_the_app_hands_its_settings_to_the_store() -> None:
    app = Celery(
        "r", broker="memory://", backend="cache+memory://", set_as_current=False,
        result_backend_always_retry=True, result_backend_max_retries=5,
        result_backend_base_sleep_between_retries_ms=20,
        result_backend_max_sleep_between_retries_ms=300,
    )  # fmt: skip
    assert app.backend.retry == StoreRetry(True, 5, 20, 300)
    default = Celery("d", broker="memory://", backend="cache+memory://", set_as_current=False)
    assert default.backend.retry == StoreRetry(False, math.inf, 10, 10_000)


def test_a_negative_limit_names_the_setting() -> None:
    app = Celery(
        "r", broker="memory://", backend="cache+memory://", set_as_current=False,
        result_backend_max_retries=-1,
    )  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="result_backend_max_retries"):
        app.backend  # noqa: B018
