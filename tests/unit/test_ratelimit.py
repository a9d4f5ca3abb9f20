"""Rate limits: parsing Celery's forms and the token bucket, with a fake clock."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.worker.ratelimit import RateLimits, TokenBucket, parse_rate


@pytest.mark.parametrize(
    ("rate", "per_second"),
    [("10/m", 10 / 60), ("5/s", 5.0), ("100/h", 100 / 3600), (2, 2.0), ("3", 3.0),
     (None, None), (0, None), ("0/m", None)],
)  # fmt: skip
def test_celery_rate_forms(rate: str | int | None, per_second: float | None) -> None:
    if per_second is None:
        assert parse_rate(rate) is None
    else:
        assert parse_rate(rate) == pytest.approx(per_second)


@pytest.mark.parametrize("bad", ["ten/m", "10/d", "-1/s"])
def test_bad_rates_name_the_accepted_forms(bad: str) -> None:
    with pytest.raises(ValueError, match="'N/s', 'N/m', 'N/h'"):
        parse_rate(bad)


def test_the_bucket_spaces_runs_evenly() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10 / 60, clock=lambda: now[0])  # 10/m: one every 6 s
    assert bucket.take() == 0.0
    assert bucket.take() == pytest.approx(6.0)
    now[0] += 5.0
    assert bucket.take() == pytest.approx(1.0)
    now[0] += 1.0
    assert bucket.take() == 0.0


def test_per_task_limits_and_runtime_changes() -> None:
    app = Celery("rl", broker="memory://")

    @app.task(rate_limit="1/s")
    def limited() -> None:
        return None

    @app.task
    def free() -> None:
        return None

    limits = RateLimits()
    assert limits.wait_for(limited) == 0.0
    assert limits.wait_for(limited) > 0.5
    assert all(limits.wait_for(free) == 0.0 for _ in range(100))  # unlimited tasks never wait
    limits.set(limited.name, None)  # the runtime hook (remote control) lifts the limit
    assert limits.wait_for(limited) == 0.0
    assert RateLimits(disabled=True).wait_for(limited) == 0.0


def test_the_default_rate_limit_setting_applies() -> None:
    app = Celery("rl", broker="memory://", task_default_rate_limit="1/h")

    @app.task
    def hourly() -> None:
        return None

    limits = RateLimits()
    assert limits.wait_for(hourly) == 0.0 and limits.wait_for(hourly) > 3000
