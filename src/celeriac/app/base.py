"""``Celeriac`` (alias ``Celery``): settings, the task registry, and the way out to brokers.

App core. The app turns settings into engine constructor arguments (engines never
read ``app.conf``), builds tasks from functions, and sends calls through its producer.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, Literal, ParamSpec, TypeVar, cast, overload

from celeriac import signals
from celeriac._context import get_current_request, set_current_app, set_default_app_factory
from celeriac._forksafe import ForkSafeLock
from celeriac._tracing import TaskTracing
from celeriac.app import builtins, entrypoints, periodic, shared
from celeriac.app import fixups as fixup_hooks
from celeriac.app.annotations import resolve_annotations
from celeriac.app.broker_connection import ConnectionMembers, broker_for_url
from celeriac.app.checks import check_task_protocol
from celeriac.app.duplicates import KEPT, REPLACED, is_same_function, warn_duplicate
from celeriac.app.engine_options import make_backend
from celeriac.app.members import AppMembers
from celeriac.app.parts import AppParts
from celeriac.app.pickling import PicklingMembers
from celeriac.app.producer import Producer
from celeriac.app.pydantic_models import OPTIONS as PYDANTIC_OPTIONS
from celeriac.app.pydantic_models import PydanticTask
from celeriac.app.registry import TaskRegistry
from celeriac.app.report import bugreport
from celeriac.app.routing import Router
from celeriac.app.sending import BrokerSender, Sender, sending_through
from celeriac.app.urls import read_url, write_url
from celeriac.brokers.base import Broker
from celeriac.canvas import Signature, signature
from celeriac.config.conf import Settings
from celeriac.config.hints import did_you_mean, warn_unknown
from celeriac.exceptions import AlwaysEagerIgnored, ImproperlyConfigured
from celeriac.rates import check_scope, parse_rate
from celeriac.result import AsyncResult, GroupResult
from celeriac.results.base import ResultBackend
from celeriac.signals import Signal
from celeriac.task import Task as BaseTask
from celeriac.task import new_id

if TYPE_CHECKING:
    from celeriac.app.beat_entries import BeatEntries

P = ParamSpec("P")
R = TypeVar("R")


class Celeriac(AppParts, AppMembers, ConnectionMembers, PicklingMembers):
    """The application: ``app = Celeriac('proj', broker=..., backend=...)``."""

    #: The fix-ups an app has unless ``Celery(fixups=...)`` names others, as Celery's.
    builtin_fixups: frozenset[str] = fixup_hooks.BUILTIN

    def __init__(
        self,
        main: str | None = None,
        broker: str | Sequence[str] | Broker | None = None,
        backend: str | None = None,
        include: Iterable[str] | None = None,
        config_source: Any = None,
        set_as_current: bool = True,
        namespace: str | None = None,
        task_cls: type[BaseTask[Any, Any]] | None = None,
        autofinalize: bool = True,
        strict_typing: bool = True,
        loader: Any = None,
        amqp: Any = None,
        events: Any = None,
        log: Any = None,
        control: Any = None,
        tasks: Mapping[str, Any] | None = None,
        fixups: Iterable[Any] | None = None,
        **settings: Any,
    ) -> None:
        self.main = main
        # Part classes (a class or 'module:Class') over the class attributes, as Celery's.
        self._tasks = self._init_parts(amqp, control, events, loader, log, tasks)
        self.autofinalize = autofinalize  # False: tasks and app.tasks refused before finalize()
        self.strict_typing = strict_typing  # the default of Task.typing
        self.namespace = namespace  # Celery keeps the constructor's choices readable
        self.set_as_current = set_as_current
        # Celery's: the built-in fix-ups (Django's, when DJANGO_SETTINGS_MODULE is set)
        # unless others are given.
        self.fixups: set[Any] | list[Any] = (
            set(self.builtin_fixups) if fixups is None else list(fixups)
        )
        self._fixups = fixup_hooks.install(self, self.fixups)
        task_cls = task_cls or fixup_hooks.default_task_cls(self._fixups)
        self.task_cls = task_cls or BaseTask
        # Celery's app hooks: ``@app.on_after_configure.connect``; each is sent with sender=app.
        self.on_after_configure = Signal("app.on_after_configure")  # source=app.conf
        self.on_after_finalize = Signal("app.on_after_finalize")
        self.on_after_fork = Signal("app.on_after_fork")  # in each prefork child
        self._configured = False
        self.conf = Settings()
        if config_source is not None:
            self.conf.config_from_object(config_source, namespace=namespace)
        self._making = ForkSafeLock(reentrant=True)  # makes the broker and result store
        self._broker: Broker | None = None
        self._read_broker: Broker | None = None  # broker_read_url, when it differs
        if isinstance(broker, Broker):  # an engine built by the caller (tests, embedding)
            self._broker = broker  # it is the broker, whatever CELERY_BROKER_URL says
            self.conf.override("broker_url", f"{broker.schemes[0]}://")
        elif broker is not None:
            self.conf.broker_url = broker
        if backend is not None:
            self.conf.result_backend = backend
        if include is not None:
            self.conf.include = tuple(include)
        self.conf.update(settings)
        self._task_base = task_cls or BaseTask
        self._bound_task_cls: type[BaseTask[Any, Any]] | None = None
        self._autodiscover: list[tuple[Any, str]] = []
        self._backend: ResultBackend | None = None
        self._router: tuple[int, Router] | None = None
        self._sender: Sender | None = None
        self.producer = Producer(self)
        # Set by celeriac.contrib.opentelemetry.instrument(app): spans for sends and runs.
        self.tracing: TaskTracing | None = None
        self.finalized = False
        if set_as_current:
            self.set_current()
        builtins.register(self)
        shared.register_app(self)
        self.on_init()

    def __repr__(self) -> str:
        return f"<Celeriac {self.main or '__main__'} at {id(self):#x}>"

    def set_current(self) -> None:
        set_current_app(self)

    def config_from_object(self, obj: Any, namespace: str | None = None) -> None:
        self.conf.config_from_object(obj, namespace=namespace)

    def config_from_envvar(
        self, variable_name: str, silent: bool = False, force: bool = False
    ) -> bool:
        """``config_from_object`` of the module the variable names. Loading is always
        immediate here, so ``force`` changes nothing. With ``silent``, an unset variable
        or a module that does not import returns False instead of raising."""
        module_name = os.environ.get(variable_name)
        if not module_name:
            if silent:
                return False
            raise ImproperlyConfigured(
                f"environment variable {variable_name!r} is not set: set it to the "
                f"configuration module to load (say {variable_name}=proj.celeryconfig)"
            )
        try:
            self.config_from_object(module_name)
        except ImproperlyConfigured as exc:
            if silent and isinstance(exc.__cause__, ImportError):
                return False
            raise ImproperlyConfigured(f"{variable_name}={module_name!r}: {exc}") from exc
        return True

    def _announce_configured(self) -> None:
        """Send ``on_after_configure`` once, when the app first reads its settings to do
        work (an engine, the router, ``finalize``): writes before that, and receivers
        connected before that, all count, as with Celery's lazily read configuration."""
        if not self._configured:
            self._configured = True
            self.on_configure()
            self.on_after_configure.send(sender=self, source=self.conf)
            check_task_protocol(self.conf)  # after the receivers, who may have set it

    @property
    def current_worker_task(self) -> BaseTask[Any, Any] | None:
        """The task whose body runs in this thread or coroutine in a worker (or in
        ``apply``), or None outside a task."""
        request = get_current_request()
        if request is None or request.task is None:
            return None
        return cast("BaseTask[Any, Any] | None", self._tasks.get(request.task))

    # -- engines ----------------------------------------------------------------------------
    @property
    def broker(self) -> Broker:
        """The broker calls are published to (``broker_write_url``, else the broker URL,
        maybe composed from ``broker_host``, ``broker_user``, ...)."""
        broker = self._broker
        if broker is None:
            with self._making:  # threads' first sends at once: one broker, not one each
                if self._broker is None:
                    self._announce_configured()
                    self._broker = broker_for_url(self.conf, write_url(self.conf))
                broker = self._broker
        return broker

    @property
    def read_broker(self) -> Broker:
        """The broker a worker consumes from: ``broker_read_url`` when it names another
        broker than ``broker``'s, else ``broker`` itself."""
        url = read_url(self.conf)
        if url == write_url(self.conf):
            return self.broker
        broker = self._read_broker
        if broker is None:
            with self._making:
                if self._read_broker is None:
                    self._announce_configured()
                    self._read_broker = broker_for_url(self.conf, url)
                broker = self._read_broker
        return broker

    @property
    def backend(self) -> ResultBackend:
        backend = self._backend
        if backend is None:
            with self._making:  # threads' first results at once: one store, not one each
                if self._backend is None:
                    self._backend = make_backend(self)
                backend = self._backend
        return backend

    @property
    def router(self) -> Router:
        """Rebuilt when a setting changed since it was built (routes may be set late)."""
        conf = self.conf
        if self._router is None or self._router[0] != conf.version:
            self._announce_configured()
            router = Router(
                conf.task_routes,
                conf.task_queues,
                conf.task_default_queue,
                conf.task_create_missing_queues,
            )
            self._router = (conf.version, router)
        return self._router[1]

    @property
    def sender(self) -> Sender:
        """Where task calls go once built: the broker (``BrokerSender``) unless set."""
        if self._sender is None:
            self._sender = BrokerSender(self.broker)
        return self._sender

    @sender.setter
    def sender(self, sender: Sender | None) -> None:
        if sender is not None and not isinstance(sender, Sender):
            raise TypeError(
                f"app.sender must be a celeriac.app.sending.Sender (or None for the "
                f"broker), not {type(sender).__name__}"
            )
        self._sender = sender

    def sending_through(self, sender: Sender) -> contextlib.AbstractContextManager[Sender]:
        """``with app.sending_through(sender):`` this thread's (or asyncio task's) calls
        inside the block go to ``sender``; e.g. one per database transaction."""
        return sending_through(self, sender)

    def config_from_cmdline(self, argv: Sequence[str], namespace: str | None = "celery") -> None:
        """Settings from ``name=value`` words (``worker.concurrency=4``), as Celery reads
        them: see ``celeriac.app.entrypoints.parse_cmdline_config``."""
        self.conf.update(entrypoints.parse_cmdline_config(argv, namespace))

    def start(self, argv: Sequence[str] | None = None) -> int:
        """Run the ``celeriac`` command line for this app (default: ``sys.argv[1:]``)."""
        return entrypoints.start(self, argv)

    def worker_main(self, argv: Sequence[str] | None = None) -> int:
        """Run ``celeriac worker`` for this app: ``app.worker_main(['worker', '-l', 'info'])``."""
        return entrypoints.worker_main(self, argv)

    def bugreport(self) -> str:
        """Versions, platform, URLs and changed settings, secrets masked (``celeriac report``)."""
        return bugreport(self)

    def close(self) -> None:
        if self._backend is not None:  # first: rpc://'s reply topic is on the broker
            self._backend.close()
        if self._broker is not None:
            self._broker.close()
        if self._read_broker is not None:
            self._read_broker.close()

    # -- tasks ------------------------------------------------------------------------------
    @property
    def Task(self) -> type[BaseTask[Any, Any]]:
        """The task base class bound to this app (``class MyTask(app.Task)``)."""
        if self._bound_task_cls is None:
            base = self._task_base
            self._bound_task_cls = base if base._app is self else self.create_task_cls()
        return self._bound_task_cls

    def _bind_base(self, base: type[BaseTask[Any, Any]]) -> type[BaseTask[Any, Any]]:
        if base._app is self:
            return base
        bound = type(base.__name__, (base,), {"_app": self, "__module__": base.__module__})
        return bound

    @property
    def tasks(self) -> TaskRegistry:
        self.finalize(auto=True)
        return self._tasks

    @overload
    def task(self, fun: Callable[P, R], /) -> BaseTask[P, R]: ...

    @overload
    def task(
        self, *, bind: Literal[True], name: str | None = ..., base: Any = ..., **options: Any
    ) -> Callable[[Callable[Concatenate[Any, P], R]], BaseTask[P, R]]: ...

    @overload
    def task(
        self,
        *,
        bind: Literal[False] = ...,
        name: str | None = ...,
        base: Any = ...,
        **options: Any,
    ) -> Callable[[Callable[P, R]], BaseTask[P, R]]: ...

    def task(self, *args: Any, **options: Any) -> Any:
        """``@app.task`` or ``@app.task(name=..., bind=True, base=..., max_retries=...)``."""
        if len(args) == 1 and callable(args[0]) and not options:
            return self._task_from_fun(args[0])
        if args:
            raise TypeError("@app.task takes keyword options only: @app.task(bind=True)")

        def decorate(fun: Callable[..., Any]) -> Any:
            return self._task_from_fun(fun, **options)

        return decorate

    def gen_task_name(self, name: str, module: str) -> str:
        if module == "__main__" and self.main:
            module = self.main
        return f"{module}.{name}"

    def _task_from_fun(
        self,
        fun: Callable[..., Any],
        name: str | None = None,
        base: type[BaseTask[Any, Any]] | None = None,
        bind: bool = False,
        pydantic: bool = False,
        **options: Any,
    ) -> BaseTask[Any, Any]:
        name = name or self.gen_task_name(fun.__name__, fun.__module__)
        if name in self._tasks:
            existing = cast("BaseTask[Any, Any]", self._tasks[name])
            if not is_same_function(existing, fun):  # another function
                warn_duplicate(self, name, existing, fun, KEPT)
            return existing
        parent = self._bind_base(base) if base is not None else self.Task
        models = _pydantic_options(name, pydantic, options)
        check_task_options(name, parent, options)
        body, wrapper = fun, None
        if pydantic:  # validate model arguments in, dump a returned model out
            wrapper = PydanticTask(self, fun, name, bound=bind, **models)
            body = wrapper.wrap()
        attributes = {
            "name": name,
            "run": body if bind else staticmethod(body),
            "_pydantic": wrapper,
            "__doc__": fun.__doc__,
            "__module__": fun.__module__,
            "__qualname__": getattr(fun, "__qualname__", fun.__name__),
            "__wrapped__": fun if bind else staticmethod(fun),  # task.__wrapped__(...) works
            "_decorated": True,
            **options,
        }
        task: BaseTask[Any, Any] = type(fun.__name__, (parent,), attributes)()
        task.__dict__["__name__"] = fun.__name__
        self._tasks[name] = task
        self._bind_task(task)
        return task

    def register_task(self, task: Any, **options: Any) -> BaseTask[Any, Any]:
        """Register a class-based task (a ``Task`` subclass or instance)."""
        instance = cast("BaseTask[Any, Any]", task() if inspect.isclass(task) else task)
        cls = type(instance)
        if cls._app is None:
            cls._app = self
        if not instance.name:
            cls.name = self.gen_task_name(cls.__name__, cls.__module__)
        for key, value in options.items():
            setattr(instance, key, value)
        existing = self._tasks.get(str(instance.name))
        if existing is not None and existing is not instance:
            warn_duplicate(self, str(instance.name), existing, instance, REPLACED)
        self._tasks[str(instance.name)] = instance
        self._bind_task(instance)
        return instance

    def _annotations_for(self, cls: type[BaseTask[Any, Any]]) -> list[dict[str, Any]]:
        """The attribute sets ``task_annotations`` gives ``cls``, in the order they apply;
        an unknown attribute (not an ``'@method'`` wrapper) is warned about."""
        found = resolve_annotations(cls, self.conf.task_annotations)
        for attributes in found:
            plain = {key: value for key, value in attributes.items() if key[:1] != "@"}
            check_task_options(str(cls.name), cls, plain, refuse=False)
        return found

    def autodiscover_tasks(
        self,
        packages: Sequence[str] | Callable[[], Sequence[str]] | None = None,
        related_name: str = "tasks",
        force: bool = False,
    ) -> None:
        """Import ``<package>.tasks`` for each package, now (``force``) or at finalize."""
        self._autodiscover.append((packages, related_name))
        if force or self.finalized:
            self._import_related(packages, related_name)

    def _import_related(self, packages: Any, related_name: str) -> None:
        if packages is None:  # Celery's rule: the fix-ups' packages (Django's installed apps)
            packages = fixup_hooks.packages(self._fixups)
        for package in (packages() if callable(packages) else packages) or ():
            module = f"{package}.{related_name}"
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise  # a misspelt package, or a failed import inside the tasks module

    def finalize(self, auto: bool = False) -> None:
        """Send ``import_modules``, import ``imports``, ``include`` and autodiscovered
        modules (once), then send ``on_after_finalize``. ``auto``: a first use of the
        registry, refused with ``Celery(autofinalize=False)``."""
        if self.finalized:
            return
        if auto:
            self._check_finalized()
        self.finalized = True
        self._announce_configured()
        # As Celery's loader: a receiver's error stops the start-up instead of hiding.
        for _receiver, response in signals.import_modules.send(sender=self):
            if isinstance(response, Exception):
                raise response
        for module in (*self.conf.imports, *self.conf.include):
            importlib.import_module(module)
        for packages, related_name in self._autodiscover:
            self._import_related(packages, related_name)
        for task in list(self._tasks.values()):
            self._annotate(type(task))
        self.on_after_finalize.send(sender=self)

    @functools.cached_property
    def beat(self) -> BeatEntries:
        """Live changes to the periodic tasks of running beats (``app.beat.add(...)``)."""
        # Loaded on first use: schedules and the cron parser stay out of every worker.
        from celeriac.app.beat_entries import BeatEntries

        return BeatEntries(self)

    def add_periodic_task(
        self, schedule: Any, sig: Any, args: Sequence[Any] = (),
        kwargs: Mapping[str, Any] | None = None, name: str | None = None, **opts: Any,
    ) -> str:  # fmt: skip
        """Add a periodic task to ``beat_schedule`` (Celery's call; see docs/beat.md)."""
        return periodic.add_periodic_task(self, schedule, sig, args, kwargs, name, **opts)

    # -- calling ----------------------------------------------------------------------------
    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: dict[str, Any] | None = None,
        task_id: str | None = None,
        add_to_parent: bool = True,
        **options: Any,
    ) -> AsyncResult[Any]:
        """Send a task by name (it need not be registered in this process). Sent from a
        running task, the result is one of that task's ``children`` unless
        ``add_to_parent=False`` (or the task's ``trail`` is off)."""
        if self.producer.settings().always_eager:
            warnings.warn(
                AlwaysEagerIgnored("task_always_eager has no effect on send_task"), stacklevel=2
            )
        result = self.producer.send_task(name, args, kwargs, task_id=task_id or new_id(), **options)
        parent = self.current_worker_task if add_to_parent else None
        if parent is not None:
            parent.add_trail(result)
        return result

    def send_task_many(
        self, calls: Iterable[tuple[str, Sequence[Any], Mapping[str, Any], dict[str, Any]]]
    ) -> list[AsyncResult[Any]]:
        """Send several ``(name, args, kwargs, options)`` calls in one broker round trip
        (a group does); each is checked and given its task's defaults as ``apply_async``
        would. The results come back in the same order."""
        prepared = []
        for name, args, kwargs, call_options in calls:
            options = dict(call_options)
            task_id = options.pop("task_id", None) or new_id()
            task = self.tasks.get(name)
            if task is not None:
                args, kwargs = task.dump_model_arguments(args, kwargs, options)
                task.outgoing_options(args, kwargs, options)
            prepared.append((name, args, kwargs, task_id, task, options))
        return self.producer.send_many(prepared)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[Any]:
        return AsyncResult(task_id, app=self, **kwargs)

    def GroupResult(
        self, group_id: str | None = None, results: Iterable[Any] | None = None, **kwargs: Any
    ) -> GroupResult:
        return GroupResult(group_id, results, app=self, **kwargs)

    def signature(self, *args: Any, **kwargs: Any) -> Signature:
        kwargs.setdefault("app", self)
        return signature(*args, **kwargs)


def check_task_options(
    name: str, base: type, options: dict[str, Any], *, refuse: bool = True
) -> None:
    """Options of ``@app.task`` become task attributes, so an option must be an attribute
    of the base class (a custom base may declare its own). A misspelt one (``retrys=``, or
    the setting's name ``task_time_limit=`` for ``time_limit=``) is refused with the closest
    attribute (``refuse=False``, for ``task_annotations``: warned). Rate options that
    cannot work fail here, at definition, not in a worker."""
    # Offer data attributes only: a method is rarely what a misspelt option meant.
    known = [
        a
        for a in dir(base)
        if not a.startswith("_") and not inspect.isroutine(getattr(base, a, None))
    ]
    for option in options:
        if hasattr(base, option):
            continue
        # The setting's name for an option (task_time_limit=) is a common slip.
        guess = option.removeprefix("task_")
        if refuse:
            hint = did_you_mean(guess, known, "; task options are the attributes of Task")
            raise TypeError(f"@app.task: unknown option {option!r} for task {name!r}{hint}")
        warn_unknown(
            f"task {name!r}: unknown option {option!r} (kept as an attribute)",
            guess,
            known,
            stacklevel=4,
        )
    if options.get("rate_limit") is not None:
        parse_rate(options["rate_limit"])
    check_scope(options.get("rate_limit_scope"))


def _pydantic_options(name: str, pydantic: bool, options: dict[str, Any]) -> dict[str, Any]:
    """Take ``pydantic_strict``, ``pydantic_context`` and ``pydantic_dump_kwargs`` out of
    ``options``; they mean something only with ``pydantic=True``."""
    taken = {
        key.removeprefix("pydantic_"): options.pop(key)
        for key in PYDANTIC_OPTIONS[1:]
        if key in options
    }
    if taken and not pydantic:
        given = ", ".join(f"pydantic_{key}=" for key in taken)
        raise TypeError(f"@app.task: {given} for task {name!r} needs pydantic=True as well")
    return taken


set_default_app_factory(lambda: Celeriac("default", set_as_current=False))
