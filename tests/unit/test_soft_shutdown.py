"""``SoftShutdown``: when a cold shutdown starts with a soft one, and how long it waits."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from celeriac import Celery
from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.soft_shutdown import SoftShutdown


class Idle:
    running: dict[str, Any] = {}

    async def wait_idle(self, timeout: float | None) -> bool:
        return True


class Busy(Idle):
    running = {"t1": object()}


def test_off_by_default_and_skipped_when_nothing_runs() -> None:
    app = Celery("s", broker="memory://", set_as_current=False)
    assert SoftShutdown.from_conf(app.conf) == SoftShutdown(0.0, False)
    assert not SoftShutdown(0.0).wanted(Busy())
    assert SoftShutdown(5).wanted(Busy()) and not SoftShutdown(5).wanted(Idle())
    assert SoftShutdown(5, on_idle=True).wanted(Idle())


def test_on_idle_waits_the_whole_timeout() -> None:
    loop = asyncio.new_event_loop()
    try:
        started = loop.time()
        assert loop.run_until_complete(SoftShutdown(0.2, on_idle=True).wait(Idle()))
        assert loop.time() - started >= 0.19
    finally:
        loop.close()


def test_a_negative_timeout_names_the_setting() -> None:
    app = Celery("s", broker="memory://", set_as_current=False, worker_soft_shutdown_timeout=-1)
    with pytest.raises(ImproperlyConfigured, match="worker_soft_shutdown_timeout"):
        SoftShutdown.from_conf(app.conf)
