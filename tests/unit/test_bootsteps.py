"""User bootsteps (``app.steps['worker']``): made with the worker and given its options,
started after its own parts in the order ``requires`` gives, stopped first; as Celery's."""

from __future__ import annotations

from typing import Any

import pytest

from celeriac import Celery, bootsteps, signals
from celeriac.exceptions import ImproperlyConfigured
from celeriac.testing import start_worker
from celeriac.worker import exitcodes
from celeriac.worker.worker import Worker

events: list[str] = []


class Database(bootsteps.StartStopStep):
    def start(self, worker: Any) -> None:
        events.append(f"start db pool={worker.pool is not None} ready={worker.ready.is_set()}")

    def stop(self, worker: Any) -> None:
        events.append("stop db")

    def terminate(self, worker: Any) -> None:
        events.append("terminate db")


class Cache(bootsteps.StartStopStep):
    requires = (f"{__name__}:Database", "celery.worker.components:Pool")

    def __init__(self, worker: Any, region: str = "?", **kwargs: Any) -> None:
        self.region = region
        events.append(f"init cache region={region} concurrency={kwargs.get('concurrency')}")

    def start(self, worker: Any) -> None:
        events.append(f"start cache {self.region}")

    def close(self, worker: Any) -> None:
        events.append("close cache")

    def stop(self, worker: Any) -> None:
        events.append("stop cache")


class Disabled(bootsteps.StartStopStep):
    def include_if(self, worker: Any) -> bool:
        return worker.pool_name == "prefork"

    def start(self, worker: Any) -> None:
        events.append("start disabled")


class Patch(bootsteps.Step):
    """A plain step changes the worker when it is made; it is not started."""

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        worker.patched = True


class Service:
    def start(self) -> None:
        events.append("service start")

    def stop(self) -> None:
        events.append("service stop")


class Wrapper(bootsteps.StartStopStep):
    """Celery's other form: ``create`` returns the object started and stopped."""

    requires = (Cache,)

    def create(self, worker: Any) -> Service:
        return Service()


class Broken(bootsteps.StartStopStep):
    requires = (Database,)

    def start(self, worker: Any) -> None:
        raise RuntimeError("cannot reach the license server")


@pytest.fixture(autouse=True)
def fresh() -> None:
    events.clear()


def test_steps_are_ordered_by_requires_with_the_required_ones_added() -> None:
    order = bootsteps.order_steps([Wrapper, Disabled])
    assert [cls.__name__ for cls in order] == ["Database", "Cache", "Disabled", "Wrapper"]
    assert Cache.name == f"{__name__}.Cache" and str(Cache) == Cache.name


def test_bad_steps_are_refused_with_the_fix() -> None:
    class A(bootsteps.Step):
        requires = (f"{__name__}:CycleB",)

    globals()["CycleB"] = type("CycleB", (bootsteps.Step,), {"requires": (A,)})
    with pytest.raises(ImproperlyConfigured, match="cannot be met"):
        bootsteps.order_steps([A])
    with pytest.raises(ImproperlyConfigured, match=r"not a celeriac\.bootsteps\.Step subclass"):
        bootsteps.order_steps([dict])
    consumer = type("C", (bootsteps.Step,), {"requires": ("celery.worker.consumer:Connection",)})
    with pytest.raises(ImproperlyConfigured, match="no consumer bootsteps"):
        bootsteps.order_steps([consumer])
    with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
        bootsteps.order_steps(["nowhere.steps:Step"])
    with pytest.raises(ImproperlyConfigured, match=r"app.steps\['consumer'\] holds steps"):
        bootsteps.WorkerSteps.of_app({"worker": set(), "consumer": {Database}})


def test_steps_start_after_the_workers_parts_and_stop_first(app: Celery) -> None:
    app.steps["worker"].update({Wrapper, Disabled, Patch})
    init_options: dict[str, Any] = {}

    def on_init(sender: Any = None, options: Any = None, **kwargs: Any) -> None:
        init_options.update(options)

    signals.celeryd_init.connect(on_init)
    try:
        with start_worker(app, concurrency=2, step_options={"region": "eu"}) as worker:
            assert worker.patched is True
            assert [type(step).__name__ for step in worker.steps] == [
                "Database", "Cache", "Wrapper",
            ]  # fmt: skip
            assert events == [
                "init cache region=eu concurrency=2",
                "start db pool=True ready=False",
                "start cache eu",
                "service start",
            ]
            events.clear()
    finally:
        signals.celeryd_init.disconnect(on_init)
    assert events == ["close cache", "service stop", "stop cache", "stop db"]
    assert init_options["region"] == "eu"  # celeryd_init's options carry them too


def test_a_cold_shutdown_terminates_the_steps(app: Celery) -> None:
    app.steps["worker"].add(Database)
    worker = Worker(app, pool="threads", install_signal_handlers=False)

    def stop_cold(sender: Any = None, **kwargs: Any) -> None:
        worker.stop("cold")

    signals.worker_ready.connect(stop_cold)
    try:
        assert worker.start() == exitcodes.EX_OK
    finally:
        signals.worker_ready.disconnect(stop_cold)
    assert events[-1] == "terminate db"


def test_a_step_that_fails_to_start_stops_the_worker(app: Celery) -> None:
    app.steps["worker"].add(Broken)
    ready: list[Any] = []

    def on_ready(sender: Any = None, **kwargs: Any) -> None:
        ready.append(sender)

    signals.worker_ready.connect(on_ready)
    try:
        worker = Worker(app, pool="threads", install_signal_handlers=False)
        assert worker.start() == exitcodes.EX_FAILURE
    finally:
        signals.worker_ready.disconnect(on_ready)
    assert not ready and not worker.ready.is_set()
    assert events == ["start db pool=True ready=False", "stop db"]


class Counting(bootsteps.StartStopStep):
    def info(self, worker: Any) -> dict[str, Any]:
        return {"counting": {"seen": 3}, "pid": -1}


def test_a_steps_info_is_in_the_workers_stats(app: Celery) -> None:
    app.steps["worker"].add(Counting)
    with start_worker(app) as worker:
        assert worker.control is not None
        stats = worker.control.stats()
    assert stats["counting"] == {"seen": 3}
    assert stats["pid"] > 0  # the worker's own keys win a clash
