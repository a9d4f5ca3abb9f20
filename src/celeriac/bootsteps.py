"""Bootsteps of one's own, as Celery's: ``app.steps['worker'].add(MyStep)``.

Pure logic (imports ``_imports`` and ``exceptions``). celeriac's worker starts its own
parts in written order, not as bootsteps; the user steps come after them (once the pool,
events and remote control are up, just before it consumes), in the order ``requires``
gives, and stop first: warm with ``stop``, cold with ``terminate``. ``WorkerSteps`` is
what the worker runs them with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from celeriac._imports import symbol_by_name
from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.bootsteps")

#: Celery's own worker steps, which a user step may require: celeriac's worker has
#: started all of its parts before any user step, so such a requirement always holds.
BUILTIN_WORKER_STEPS = frozenset(
    f"worker.{name}"
    for name in (
        "components.Timer", "components.Hub", "components.Pool", "components.Beat",
        "components.StateDB", "components.Consumer", "autoscale.WorkerComponent",
    )
)  # fmt: skip


class StepType(type):
    """Gives each step class its ``name``: ``module.Class`` unless it sets one."""

    name: str
    requires: Any

    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> StepType:
        module = attrs.get("__module__")
        attrs["name"] = attrs.get("name") or (f"{module}.{name}" if module else name)
        return super().__new__(mcs, name, bases, attrs)

    def __str__(cls) -> str:
        return cls.name

    def __repr__(cls) -> str:
        return f"step:{cls.name}{{{cls.requires!r}}}"


class Step(metaclass=StepType):
    """A step: ``__init__(parent, **options)`` when the worker is made, then ``create``
    if ``include_if(parent)``. ``requires``: steps (classes or paths) that come first."""

    name: str = ""
    label: str | None = None  # a short name for logs
    conditional = False
    requires: Iterable[Any] = ()
    last = False  # Celery keeps this for its consumer: such a step comes after all others
    enabled = True  # include_if's default

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        pass

    def include_if(self, parent: Any) -> bool:
        return bool(self.enabled)

    def instantiate(self, name: Any, *args: Any, **kwargs: Any) -> Any:
        """An object of the class ``name`` (a class or its path)."""
        return symbol_by_name(name)(*args, **kwargs)

    def _should_include(self, parent: Any) -> tuple[bool, Any]:
        if self.include_if(parent):
            return True, self.create(parent)
        return False, None

    def include(self, parent: Any) -> bool:
        return self._should_include(parent)[0]

    def create(self, parent: Any) -> Any:
        """Make what the step runs (``StartStopStep`` starts and stops it)."""
        return None

    @property
    def alias(self) -> str:
        return self.label or self.name.rsplit(".", 1)[-1]

    def info(self, obj: Any) -> Any:
        return None

    def __repr__(self) -> str:
        return f"<step: {self.alias}>"


class StartStopStep(Step):
    """A step started with the worker and stopped with it (``parent.steps``). By default
    ``start``/``stop``/``terminate`` call those of the object ``create`` returned."""

    obj: Any = None

    def start(self, parent: Any) -> Any:
        if self.obj:
            return self.obj.start()
        return None

    def stop(self, parent: Any) -> Any:
        if self.obj:
            return self.obj.stop()
        return None

    def close(self, parent: Any) -> None:
        pass

    def terminate(self, parent: Any) -> Any:
        if self.obj:
            return getattr(self.obj, "terminate", self.obj.stop)()
        return None

    def include(self, parent: Any) -> bool:
        included, self.obj = self._should_include(parent)
        if included:
            parent.steps.append(self)
        return included


def _normal(path: str) -> str:
    """``'celery.worker.components:Timer'`` -> ``'worker.components.Timer'``."""
    path = path.replace(":", ".")
    for prefix in ("celery.", "celeriac."):
        if path.startswith(prefix):
            return path[len(prefix) :]
    return path


def _required(dependency: Any) -> type[Step] | None:
    """The step class a ``requires`` item names; None for Celery's own worker steps."""
    if isinstance(dependency, str):
        if _normal(dependency) in BUILTIN_WORKER_STEPS:
            return None
        if _normal(dependency).startswith("worker.consumer"):
            raise ImproperlyConfigured(
                f"bootstep requirement {dependency!r} is a step of Celery's consumer: celeriac "
                f"has no consumer bootsteps; a worker step runs once the worker consumes"
            )
    return _step_class(dependency)


def _step_class(value: Any) -> type[Step]:
    found = symbol_by_name(value, "bootstep")
    if not (isinstance(found, type) and issubclass(found, Step)):
        raise ImproperlyConfigured(
            f"bootstep {value!r} is not a celeriac.bootsteps.Step subclass "
            f"(subclass bootsteps.StartStopStep for a step started with the worker)"
        )
    return found


def order_steps(types: Iterable[Any]) -> list[type[Step]]:
    """The steps (and the steps they require, added or not) in start order: each after
    what it requires, otherwise by name; a ``last`` step at the end."""
    classes: dict[str, type[Step]] = {}
    requires: dict[str, list[str]] = {}
    pending = [_step_class(value) for value in types]
    while pending:
        cls = pending.pop()
        if cls.name in classes:
            continue
        classes[cls.name] = cls
        needed = [step for step in map(_required, cls.requires) if step is not None]
        requires[cls.name] = [step.name for step in needed]
        pending.extend(needed)
    last = sorted(name for name, cls in classes.items() if cls.last)
    if len(last) > 1:
        raise ImproperlyConfigured(f"only one bootstep may set last = True, not {last}")
    ordered: list[str] = []
    remaining = sorted(name for name in classes if name not in last)
    while remaining:
        ready = [name for name in remaining if set(requires[name]) <= set(ordered)]
        if not ready:
            raise ImproperlyConfigured(
                f"bootsteps whose requires cannot be met (a cycle, or a requirement on the "
                f"last step): {', '.join(remaining)}"
            )
        ordered.append(ready[0])
        remaining.remove(ready[0])
    return [classes[name] for name in (*ordered, *last)]


class WorkerSteps:
    """A worker's user steps: made with the worker (``apply``), started after its own
    parts, stopped before them. A step's error while stopping is logged, not raised."""

    def __init__(self, types: Iterable[Any]) -> None:
        self.order = order_steps(types)
        self.started = 0

    @classmethod
    def of_app(cls, steps: Mapping[str, Iterable[Any]]) -> WorkerSteps:
        """The steps of ``app.steps['worker']``; steps under any other key (Celery's
        ``'consumer'``) are refused, since nothing would ever run them."""
        others = sorted(key for key, added in steps.items() if key != "worker" and added)
        if others:
            raise ImproperlyConfigured(
                f"app.steps[{others[0]!r}] holds steps, but celeriac runs only worker "
                f"steps (its consumer has no bootsteps): add them to app.steps['worker']"
            )
        return cls(steps.get("worker", ()))

    def apply(self, parent: Any, **kwargs: Any) -> None:
        """Make each step (``Step(parent, **kwargs)``), then include those that want
        to be: a ``StartStopStep`` joins ``parent.steps``."""
        made = [cls(parent, **kwargs) for cls in self.order]
        for step in made:
            step.include(parent)

    def start(self, parent: Any) -> None:
        for step in parent.steps:
            logger.debug("starting bootstep %s", step.alias)
            step.start(parent)
            self.started += 1

    def info(self, parent: Any) -> dict[str, Any]:
        """What the included steps' ``info(parent)`` return, merged (``inspect stats``)."""
        merged: dict[str, Any] = {}
        for step in parent.steps:
            merged.update(step.info(parent) or {})
        return merged

    def stop(self, parent: Any, terminate: bool = False) -> None:
        """``close`` each started step, then ``stop`` them (``terminate``, cold) in
        reverse order."""
        started, self.started = parent.steps[: self.started], 0
        for step in started:
            _call(step, "close", parent)
        for step in reversed(started):
            _call(step, "terminate" if terminate else "stop", parent)


def _call(step: Any, method: str, parent: Any) -> None:
    fun = getattr(step, method, None)
    if fun is None:
        return
    try:
        fun(parent)
    except Exception:
        logger.exception("bootstep %s raised in %s", step.alias, method)


__all__ = [
    "BUILTIN_WORKER_STEPS",
    "StartStopStep",
    "Step",
    "StepType",
    "WorkerSteps",
    "order_steps",
]
