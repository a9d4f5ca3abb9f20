"""Autoscaling on the in-process broker, with a worker in a thread: the pool grows while
tasks wait and shrinks after the keepalive, ``inspect stats`` shows the autoscaler,
``control autoscale`` moves its bounds, ``pool_grow`` is refused beside it, and bad
bounds are refused with the fix."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import start_worker
from celeriac.worker.autoscale import Autoscaler, parse_autoscale
from celeriac.worker.worker import Worker

NODE = "scaled@unit"
TO: dict[str, Any] = {"destination": [NODE], "timeout": 10.0}


def make_app() -> Celery:
    return Celery("scale", broker="memory://", backend="cache+memory://")


def _stats(app: Celery) -> dict[str, Any]:
    stats = app.control.inspect(**TO).stats()
    assert stats is not None
    return dict(stats[NODE])


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the condition did not hold in time"
        time.sleep(0.05)  # polling the worker's replies; nothing to await


def test_the_pool_grows_while_tasks_wait_and_shrinks_when_idle(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "0.5")
    app = make_app()
    running, gate = threading.Semaphore(0), threading.Event()

    @app.task
    def held() -> None:
        running.release()
        gate.wait(10)

    with start_worker(app, hostname=NODE, pool="threads", autoscale="4,1") as worker:
        assert worker.concurrency == 1 and worker.prefetch == 4  # MIN runs, MAX is held
        results = [held.delay() for _ in range(3)]
        for _ in range(3):  # all three run together: the pool grew to three threads
            assert running.acquire(timeout=5)
        assert _stats(app)["autoscaler"] == {"max": 4, "min": 1, "current": 3, "qty": 3}
        assert _stats(app)["pool"]["max-concurrency"] == 3
        gate.set()
        for result in results:
            result.get(timeout=5)
        # Idle for the keepalive: back to MIN.
        _wait_for(lambda: _stats(app)["autoscaler"]["current"] == 1)
        assert worker.pool is not None and worker.pool.concurrency == 1


def test_control_autoscale_moves_the_bounds_and_pool_grow_is_refused() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE, pool="threads", autoscale=(5, 2)) as worker:
        assert app.control.autoscale(3, 3, reply=True, **TO) == [
            {NODE: {"ok": "autoscale now max=3 min=3"}}
        ]
        assert worker.concurrency == 3 and worker.pool is not None
        assert worker.pool.concurrency == 3  # raised to the new MIN at once
        assert app.control.autoscale(1, 1, reply=True, **TO) == [
            {NODE: {"ok": "autoscale now max=1 min=1"}}
        ]
        assert worker.concurrency == 1 and worker.prefetch == 1  # MAX bounds what is held
        [bad] = app.control.autoscale(1, 2, reply=True, **TO)
        assert "0 <= MIN <= MAX" in bad[NODE]["error"]
        assert app.control.pool_grow(1, reply=True, **TO) == [
            {NODE: {"error": "pool_grow is not supported with autoscale. "
                             "Adjust autoscale range instead."}}
        ]  # fmt: skip
        [shrink] = app.control.pool_shrink(1, reply=True, **TO)
        assert "not supported with autoscale" in shrink[NODE]["error"]


def test_a_worker_without_autoscale_says_so_and_shows_no_autoscaler() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE, pool="threads"):
        [reply] = app.control.autoscale(4, 1, reply=True, **TO)
        assert (
            "Autoscale not enabled: start the worker with --autoscale=MAX,MIN"
            in (reply[NODE]["error"])
        )
        assert "autoscaler" not in _stats(app)


def test_bad_bounds_are_refused_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_autoscale("10") == (10, 0) and parse_autoscale("10,3") == (10, 3)
    for bad in ("ten", "3,10", "0,0", "4,-1"):
        with pytest.raises(ValueError, match="autoscale"):
            parse_autoscale(bad)
    app = make_app()
    with pytest.raises(ImproperlyConfigured, match=r"solo pool .* cannot autoscale"):
        Worker(app, pool="solo", autoscale="4,1")
    monkeypatch.setenv("AUTOSCALE_KEEPALIVE", "soon")
    with pytest.raises(ImproperlyConfigured, match="AUTOSCALE_KEEPALIVE must be a number"):
        Worker(app, pool="threads", autoscale="4,1")
    result = CliRunner().invoke(cli, ["-A", "nowhere", "worker", "--autoscale", "2,5"])
    assert result.exit_code != 0 and "0 <= MIN <= MAX" in result.output


def test_the_keepalive_holds_the_size_until_the_worker_was_idle_long_enough() -> None:
    size, held = [3], [0]

    def resize(n: int) -> None:
        size[0] = n

    scaler = Autoscaler(lambda: size[0], lambda: held[0], resize, 5, 1, keepalive=60)
    assert not scaler.maybe_scale()  # nothing ever received: the size stays (Celery's rule)
    held[0] = 4
    assert scaler.maybe_scale() and size[0] == 4  # grows to what is held
    held[0] = 9
    assert scaler.maybe_scale() and size[0] == 5  # up to MAX
    held[0] = 0
    assert not scaler.maybe_scale() and size[0] == 5  # a scale-up just now: kept alive
    scaler.keepalive = 1e-9
    time.sleep(0.01)  # past the (tiny) keepalive
    assert scaler.maybe_scale() and size[0] == 1  # down to MIN
