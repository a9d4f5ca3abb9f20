"""``enable_utc`` and ``timezone``: the app's zone (``app.timezone``, ``app.now()``, crontab
fields) is the ``timezone`` setting, else UTC, else, with ``enable_utc`` off, the host's
local zone, as in Celery; messages carry UTC and a naive eta is read as UTC either way."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from celeriac import Celery
from celeriac.schedules import crontab
from celeriac.signals import before_task_publish

TOKYO = timedelta(hours=9)


@pytest.fixture
def host_in_tokyo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")  # the host's local zone


def app(**settings: object) -> Celery:
    return Celery("zones", broker="memory://", set_as_current=False, **settings)


def test_enable_utc_off_makes_the_hosts_zone_the_apps(host_in_tokyo: None) -> None:
    local = app(enable_utc=False)
    assert local.now().utcoffset() == TOKYO
    assert local.timezone.utcoffset(datetime(2025, 1, 1)) == TOKYO
    assert not local.uses_utc_timezone()
    # On (the default), UTC; a timezone setting wins over both
    assert app().now().utcoffset() == timedelta(0) and app().uses_utc_timezone()
    paris = app(enable_utc=False, timezone="Europe/Paris")
    assert paris.now().utcoffset() in (timedelta(hours=1), timedelta(hours=2))


def test_crontab_fields_are_read_in_the_hosts_zone_with_enable_utc_off(
    host_in_tokyo: None,
) -> None:
    # 09:00 in Tokyo is 00:00 UTC
    clock = datetime(2025, 1, 1, 23, 30, tzinfo=timezone.utc)
    local = crontab(minute=0, hour=9, nowfun=lambda: clock, app=app(enable_utc=False))
    utc = crontab(minute=0, hour=9, nowfun=lambda: clock, app=app())
    last = datetime(2025, 1, 1, 12, tzinfo=timezone.utc)
    assert local.remaining_estimate(last) == timedelta(minutes=30)
    assert utc.remaining_estimate(last) == timedelta(hours=9, minutes=30)


def test_messages_carry_utc_and_a_naive_eta_is_utc(host_in_tokyo: None) -> None:
    local = app(enable_utc=False)
    etas: list[str] = []

    def heard(sender: object = None, headers: dict[str, str] | None = None, **_: object) -> None:
        etas.append(str((headers or {}).get("eta")))

    before_task_publish.connect(heard, weak=False)
    try:
        local.send_task("proj.add", (1, 2), eta=datetime(2030, 1, 2, 3, 4, 5))
        local.send_task("proj.add", (1, 2), countdown=60)
    finally:
        before_task_publish.disconnect(heard)
    assert etas[0] == "2030-01-02T03:04:05+00:00"
    assert etas[1].endswith("+00:00")
