"""The app's parts, built from classes an app subclass (or ``Celery(...)``) may replace.

App core. As in Celery, ``amqp_cls``, ``control_cls``, ``events_cls``, ``loader_cls``,
``log_cls``, ``registry_cls`` and ``backend_cls`` are class attributes holding a class or
its ``'module:Class'`` path, built with ``app=`` on first use; ``subclass_with_self``
binds a class of an extension to the app. ``user_options`` and ``steps`` are the
command line's and the worker's extension points (``celeriac.bootsteps``).
"""

from __future__ import annotations

import functools
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Any, cast

from celeriac._context import get_current_app
from celeriac._imports import symbol_by_name
from celeriac.app.loader import AppLoader
from celeriac.app.log import Logging
from celeriac.app.registry import TaskRegistry
from celeriac.events import Events
from celeriac.exceptions import ImproperlyConfigured
from celeriac.results.base import ResultBackend

if TYPE_CHECKING:
    from celeriac.app.amqp import AMQP
    from celeriac.app.base import Celeriac
    from celeriac.app.control import Control

#: ``loader_cls`` aliases, as Celery's (its ``default`` loader is not offered).
_LOADERS = {"app": AppLoader}


def _unpickle_appattr(reverse: str, args: tuple[Any, ...]) -> Any:
    """An object of an app-bound class, rebuilt on the current app (``subclass_with_self``)."""
    found: Any = get_current_app()
    for part in reverse.split("."):
        found = getattr(found, part)
    return found(*args)


class AppParts:
    """The part classes of Celery's app (mixed into ``Celeriac``)."""

    # Named by path, as Celery's: the client-side parts load on first use, so a worker
    # that never sends a remote-control command does not carry their code.
    amqp_cls: Any = "celeriac.app.amqp:AMQP"
    backend_cls: Any = None  # None: the store result_backend names
    control_cls: Any = "celeriac.app.control:Control"
    events_cls: Any = Events
    loader_cls: Any = None  # None: CELERY_LOADER, else celeriac's AppLoader
    log_cls: Any = Logging
    registry_cls: Any = TaskRegistry

    def _init_parts(
        self, amqp: Any, control: Any, events: Any, loader: Any, log: Any, tasks: Any
    ) -> TaskRegistry:
        """Take ``Celery(amqp=..., ...)``'s classes over the class attributes, as Celery
        does; the task registry to use (``tasks``, else a new ``registry_cls``)."""
        self.amqp_cls = amqp or self.amqp_cls
        self.control_cls = control or self.control_cls
        self.events_cls = events or self.events_cls
        self.loader_cls = loader or os.environ.get("CELERY_LOADER") or self.loader_cls
        self.log_cls = log or self.log_cls
        #: Options of one's own for the command line, by command: ``'preload'`` (every
        #: command), ``'worker'``, ``'beat'``, ``'events'`` -> a set of ``click.Option``.
        self.user_options: defaultdict[str, set[Any]] = defaultdict(set)
        #: Bootsteps of one's own: ``app.steps['worker'].add(MyStep)``.
        self.steps: defaultdict[str, set[Any]] = defaultdict(set)
        if isinstance(tasks, TaskRegistry):
            return tasks
        registry_cls = symbol_by_name(self.registry_cls, "registry_cls")
        if not (isinstance(registry_cls, type) and issubclass(registry_cls, TaskRegistry)):
            raise ImproperlyConfigured(
                f"registry_cls {self.registry_cls!r} must be a subclass of "
                f"celeriac.app.registry.TaskRegistry"
            )
        registry: TaskRegistry = registry_cls(tasks or {})
        return registry

    def _build(self, attribute: str) -> Any:
        """The part whose class ``attribute`` holds, built with ``app=self``."""
        return symbol_by_name(getattr(self, attribute), attribute)(app=self)

    @functools.cached_property
    def amqp(self) -> AMQP:
        """Celery's ``app.amqp``: ``app.amqp.queues`` (with ``select_add``), ``router``."""
        return cast("AMQP", self._build("amqp_cls"))

    @functools.cached_property
    def control(self) -> Control:
        """Commands to the workers: ``app.control.revoke(task_id, terminate=True)``."""
        return cast("Control", self._build("control_cls"))

    @functools.cached_property
    def events(self) -> Events:
        """Events: ``app.events.Receiver(app, handlers={...})``, ``State()``, ``Dispatcher()``."""
        return cast("Events", self._build("events_cls"))

    @functools.cached_property
    def log(self) -> Logging:
        """Logging set-up for programs of one's own: ``app.log.setup(loglevel='INFO')``."""
        return cast("Logging", self._build("log_cls"))

    @functools.cached_property
    def loader(self) -> AppLoader:
        """Celery's ``app.loader``, for importing task modules:
        ``app.loader.import_default_modules()`` (see ``celeriac.app.loader``)."""
        name = self.loader_cls or AppLoader
        if name == "default":
            raise ImproperlyConfigured(
                "loader 'default' (Celery's celeryconfig-module loader) is not offered: "
                "read settings with app.config_from_object('celeryconfig') instead"
            )
        cls = symbol_by_name(_LOADERS.get(name, name) if isinstance(name, str) else name)
        return cast("AppLoader", cls(app=self))

    def _custom_backend(self) -> ResultBackend | None:
        """The store ``backend_cls`` names, built as Celery builds it (``app=``, and
        ``url=None``: it reads its settings from ``app.conf``); None without one."""
        if self.backend_cls is None:
            return None
        backend = symbol_by_name(self.backend_cls, "backend_cls")(app=self, url=None)
        if not isinstance(backend, ResultBackend):
            raise ImproperlyConfigured(
                f"backend_cls {self.backend_cls!r} built a {type(backend).__name__}, not a "
                f"celeriac.results.base.ResultBackend: subclass it"
            )
        return backend

    def subclass_with_self(
        self,
        Class: Any,  # Celery's keyword
        name: str | None = None,
        attribute: str = "app",
        reverse: str | None = None,
        keep_reduce: bool = False,
        **kw: Any,
    ) -> type[Any]:
        """A subclass of ``Class`` (or its path) whose ``attribute`` is this app. Unless
        ``keep_reduce``, its objects pickle as ``app.<reverse>(*obj.__reduce_args__())``
        rebuilt on the current app (``reverse`` defaults to the class name)."""
        Class = symbol_by_name(Class, "Class")
        reverse = reverse or Class.__name__

        def __reduce__(obj: Any) -> tuple[Any, ...]:
            return _unpickle_appattr, (reverse, obj.__reduce_args__())

        attrs: dict[str, Any] = {
            attribute: self, "__module__": Class.__module__, "__doc__": Class.__doc__, **kw,
        }  # fmt: skip
        if not keep_reduce:
            attrs["__reduce__"] = __reduce__
        return type(name or Class.__name__, (Class,), attrs)

    def create_task_cls(self) -> type[Any]:
        """A new task base class bound to this app (what ``app.Task`` is made from)."""
        base = cast("Celeriac", self)._task_base
        return self.subclass_with_self(base, name=base.__name__, attribute="_app", keep_reduce=True)


__all__ = ["AppParts"]
