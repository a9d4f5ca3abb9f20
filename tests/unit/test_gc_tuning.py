"""worker_tune_gc: what a worker process does to the garbage collector at start."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.testing import start_worker
from celeriac.worker.gc_tuning import YOUNG_THRESHOLD, tune_for_worker


@pytest.fixture
def collector() -> Iterator[None]:
    """Put the collector back as it was, whatever the test did to it."""
    threshold, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)
    (gc.enable if enabled else gc.disable)()


def test_start_up_objects_are_frozen_and_the_young_threshold_raised(collector: None) -> None:
    gc.set_threshold(700, 10, 10)
    tune_for_worker()
    assert gc.get_threshold() == (YOUNG_THRESHOLD, 10, 10)
    assert gc.get_freeze_count() > 0


def test_a_threshold_the_app_chose_is_kept(collector: None) -> None:
    gc.set_threshold(2_500, 20, 5)
    tune_for_worker()
    assert gc.get_threshold() == (2_500, 20, 5)


def test_a_disabled_collector_is_left_alone(collector: None) -> None:
    gc.disable()
    gc.set_threshold(700, 10, 10)
    tune_for_worker()
    assert (gc.isenabled(), gc.get_threshold(), gc.get_freeze_count()) == (False, (700, 10, 10), 0)


def test_a_worker_in_a_thread_leaves_its_host_process_alone(collector: None) -> None:
    app = Celery("gc", broker="memory://", backend="cache+memory://")
    app.task(name="gc.noop")(lambda: None)
    gc.set_threshold(700, 10, 10)
    with start_worker(app, pool="threads"):
        assert app.send_task("gc.noop").get(timeout=10) is None
    assert (gc.get_threshold(), gc.get_freeze_count()) == ((700, 10, 10), 0)
