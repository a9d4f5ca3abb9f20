"""``Task``: a registered function with Celery's calling API (``delay``, ``apply_async``,
``apply``, ``retry``, signatures) and hooks.

App core: imports ``canvas``, ``trace``, ``result``, ``request`` and leaves; reaches the
app (settings, producer, backend) through ``self.app``. ``Task[P, R]`` carries the
function's parameters, so ``add.delay("x")`` is a type error for a typed ``add``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, ParamSpec, TypeVar, cast

from celeriac._context import get_current_app, get_current_request
from celeriac.canvas import Signature, mapping, stamping
from celeriac.canvas import replace as replacing
from celeriac.canvas.call_checks import check_call_options
from celeriac.canvas.signature import new_id as new_id  # also celeriac.new_id
from celeriac.canvas.signature import signature_dicts
from celeriac.exceptions import MaxRetriesExceededError, OperationalError, Retry
from celeriac.messages.protocol import custom_headers
from celeriac.rates import exponential_backoff
from celeriac.request import Request, RequestStackMembers
from celeriac.result import AsyncResult, EagerResult
from celeriac.trace import OutcomeKind, trace_task

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.results.base import ResultBackend

P = ParamSpec("P")
R = TypeVar("R")

# Task attribute -> the setting that supplies it when the attribute is None.
_FROM_CONFIG = {
    "serializer": "task_serializer",
    "rate_limit": "task_default_rate_limit",
    "rate_limit_scope": "task_rate_limit_scope",
    "priority": "task_default_priority",
    "track_started": "task_track_started",
    "acks_late": "task_acks_late",
    "acks_on_failure_or_timeout": "task_acks_on_failure_or_timeout",
    "acks_on_failure": "task_acks_on_failure",
    "acks_on_timeout": "task_acks_on_timeout",
    "store_eager_result": "task_store_eager_result",
    "reject_on_worker_lost": "task_reject_on_worker_lost",
    "retry_on_worker_lost": "task_retry_on_worker_lost",
    "ignore_result": "task_ignore_result",
    "store_errors_even_if_ignored": "task_store_errors_even_if_ignored",
    "time_limit": "task_time_limit",
    "soft_time_limit": "task_soft_time_limit",
}
_EXEC_OPTIONS = ("queue", "priority", "expires", "time_limit", "soft_time_limit", "serializer")


class Task(RequestStackMembers, Generic[P, R]):
    """A task type. ``@app.task`` makes one from a function; subclass it for custom bases."""

    name: ClassVar[str | None] = None
    _app: ClassVar[Any] = None

    typing: bool | None = None  # None: the app's strict_typing (set when registered)
    max_retries: int | None = 3
    default_retry_delay: float = 180
    rate_limit: str | int | float | None = None
    rate_limit_scope: str | None = None  # "worker" (each worker alone) or "cluster" (shared)
    ignore_result: bool | None = None
    store_errors_even_if_ignored: bool | None = None
    track_started: bool | None = None
    serializer: str | None = None
    time_limit: float | None = None
    soft_time_limit: float | None = None
    acks_late: bool | None = None
    acks_on_failure_or_timeout: bool | None = None
    acks_on_failure: bool | None = None  # None: acks_on_failure_or_timeout
    acks_on_timeout: bool | None = None  # None: acks_on_failure_or_timeout
    reject_on_worker_lost: bool | None = None
    retry_on_worker_lost: bool | None = None  # wins over reject_on_worker_lost
    store_eager_result: bool | None = None
    trail: bool = True  # record the calls a run sends as its result's children
    send_events: bool = True  # False: the worker sends no task events for this task
    resultrepr_maxsize: int = 1024  # longest result repr in the worker's log and events
    priority: int | None = None
    expires: float | dt.datetime | None = None
    queue: str | None = None
    throws: tuple[type[BaseException], ...] = ()
    autoretry_for: tuple[type[BaseException], ...] = ()
    dont_autoretry_for: tuple[type[BaseException], ...] = ()
    retry_kwargs: ClassVar[dict[str, Any]] = {}
    retry_backoff: bool | float = False
    retry_backoff_max: float = 600
    retry_jitter: bool = True
    # @app.task(pydantic=True): the body's pydantic wrapper (app.pydantic_models), or None.
    _pydantic: ClassVar[Any] = None
    # (attribute, setting) pairs: a pair of a base class's own is read when a task is bound.
    from_config: ClassVar[tuple[tuple[str, str], ...]] = tuple(_FROM_CONFIG.items())
    # The worker's request class (a celeriac.worker.request.Request subclass or its path).
    Request: ClassVar[Any] = "celeriac.worker.request:Request"
    abstract: ClassVar[bool] = True  # Celery's deprecated flag: neither Celery nor we read it
    # Celery's handles on the class: ``except self.MaxRetriesExceededError`` (or Operational).
    MaxRetriesExceededError: ClassVar[type[Exception]] = MaxRetriesExceededError
    OperationalError: ClassVar[type[Exception]] = OperationalError

    # -- identity and context ---------------------------------------------------------------
    @property
    def app(self) -> Celeriac:
        return cast("Celeriac", self._app if self._app is not None else get_current_app())

    @property
    def backend(self) -> ResultBackend:
        return self.app.backend

    @property
    def request(self) -> Request:
        """The running call's context; an empty one when called as a plain function."""
        current = get_current_request()
        if current is not None and current.task == self.name:
            return cast(Request, current)
        return Request(task=self.name)

    def _setting(self, attribute: str) -> Any:
        value = getattr(self, attribute)
        if value is None:
            value = self.app.conf[_FROM_CONFIG[attribute]]
        if value is None and attribute in ("acks_on_failure", "acks_on_timeout"):
            return self._setting("acks_on_failure_or_timeout")  # Celery 5.7's fallback
        return value

    def resolve_ignore_result(self) -> bool:
        return bool(self._setting("ignore_result"))

    def resolve_track_started(self) -> bool:
        return bool(self._setting("track_started"))

    def resolve_store_errors(self) -> bool:
        return bool(self._setting("store_errors_even_if_ignored"))

    def resolve(self, attribute: str) -> Any:
        """An execution attribute (acks_late, time_limit, ...) or its setting's value."""
        return self._setting(attribute)

    # -- the body ---------------------------------------------------------------------------
    def run(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """The task body: ``@app.task`` sets it; a class-based task defines it."""
        raise NotImplementedError(f"task {self.name!r} must define run()")

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        if not self.autoretry_for:
            return self.run(*args, **kwargs)
        try:
            value = self.run(*args, **kwargs)
        except Exception as exc:
            self._maybe_autoretry(exc)
            raise
        if inspect.iscoroutine(value):
            return cast(R, self._autoretry_coroutine(value))
        return value

    async def _autoretry_coroutine(self, coroutine: Any) -> Any:
        try:
            return await coroutine
        except Exception as exc:
            self._maybe_autoretry(exc)
            raise

    def _maybe_autoretry(self, exc: Exception) -> None:
        if isinstance(exc, (Retry, self.dont_autoretry_for)):
            return
        if not isinstance(exc, self.autoretry_for):
            return
        options = dict(self.retry_kwargs)
        if self.retry_backoff:
            factor = 1.0 if self.retry_backoff is True else float(self.retry_backoff)
            options["countdown"] = exponential_backoff(
                factor, self.request.retries, self.retry_backoff_max, self.retry_jitter
            )
        raise self.retry(exc=exc, **options)

    # -- calling ----------------------------------------------------------------------------
    def _parameters(self) -> inspect.Signature | None:
        """The body's signature, worked out once per body (it is read on every call)."""
        run = self.run
        function = getattr(run, "__func__", run)
        cached = self.__dict__.get("_signature_of")
        if cached is not None and cached[0] is function:
            return cast("inspect.Signature | None", cached[1])
        try:
            params: inspect.Signature | None = inspect.signature(run)
        except (TypeError, ValueError):
            params = None
        self.__dict__["_signature_of"] = (function, params)
        return params

    def arg_names(self) -> tuple[str, ...]:
        params = self._parameters()
        return tuple(params.parameters) if params is not None else ()

    def check_arguments(self, args: Sequence[Any], kwargs: Mapping[str, Any]) -> None:
        """Fail at call time, not in a worker, when the arguments cannot bind."""
        params = self._parameters()
        if params is None:
            return
        try:
            params.bind(*args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}(): {exc}") from None

    def check_call(self, args: Sequence[Any], kwargs: Mapping[str, Any], options: Any) -> None:
        """Refuse a call that cannot work: wrong arguments (``typing``), unknown options."""
        if self.app.strict_typing if self.typing is None else self.typing:
            self.check_arguments(args, kwargs)
        check_call_options(str(self.name), options)

    def outgoing_options(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: dict[str, Any]
    ) -> dict[str, Any]:
        """Check a call about to be sent and fill in this task's own defaults (queue,
        priority, expires, time limits, serializer) where the call gives none."""
        self.check_call(args, kwargs, options)
        for option in _EXEC_OPTIONS:
            value = getattr(self, option, None)
            if value is not None:
                options.setdefault(option, value)
        return options

    def dump_model_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any]
    ) -> tuple[Sequence[Any], Mapping[str, Any]]:
        """With ``pydantic=True``: the pydantic models passed, as the plain data the task
        validates back into them (pickle sends models as they are)."""
        if self._pydantic is None:
            return args, kwargs
        serializer = options.get("serializer") or self.serializer or self.app.conf.task_serializer
        if serializer == "pickle":
            return args, kwargs
        return cast(
            "tuple[Sequence[Any], Mapping[str, Any]]", self._pydantic.dump_arguments(args, kwargs)
        )

    def delay(self, *args: P.args, **kwargs: P.kwargs) -> AsyncResult[R]:
        return self.apply_async(args, kwargs)

    def apply_async(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> AsyncResult[R]:
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        if self._pydantic is not None:
            dumped_args, dumped_kwargs = self.dump_model_arguments(args, kwargs, options)
            args, kwargs = tuple(dumped_args), dict(dumped_kwargs)
        app = self.app
        app._check_finalized()  # Celery(autofinalize=False): refused before app.finalize()
        if app.producer.settings().always_eager:
            self.check_call(args, kwargs, options)
            task_id = task_id or new_id()
            # An idempotency key holds in eager mode too, so tests see what production does.
            held = app.producer.reserve_idempotency_key(options.get("idempotency_key"), task_id)
            if held is not None and held != task_id:
                return AsyncResult(held, task_name=self.name, app=app)
            return self.apply(
                args,
                kwargs,
                task_id=task_id or new_id(),
                link=link,
                link_error=link_error,
                **options,
            )
        shadow = shadow or self.shadow_name(args, kwargs, options)
        self.outgoing_options(args, kwargs, options)
        if type(self).AsyncResult is not Task.AsyncResult:  # a base class's own result type
            options.setdefault("result_cls", self.AsyncResult)
        result: AsyncResult[R] = app.send_task(
            str(self.name),
            args,
            kwargs,
            task_id=task_id,
            link=link,
            link_error=link_error,
            shadow=shadow,
            task_type=self,
            **options,
        )
        return result

    def apply(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        link: Any = None,
        link_error: Any = None,
        task_id: str | None = None,
        retries: int | None = None,
        throw: bool | None = None,
        headers: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> EagerResult[R]:
        """Run the task here and now through ``trace``, blocking until it returns."""
        app = self.app
        app._check_finalized()
        task_id = task_id or new_id()
        throw = app.conf.task_eager_propagates if throw is None else throw
        request = self._eager_request(args, kwargs, task_id, retries, link, link_error, options)
        request.headers = dict(headers or {})
        store = bool(self.resolve("store_eager_result"))
        while True:
            outcome = trace_task(self, request, store_result=store)
            if outcome.kind is not OutcomeKind.RETRY or outcome.retry is None:
                break
            # Eager retries run at once (the countdown is not waited), as in Celery.
            sig = outcome.retry.sig
            request = dataclasses.replace(
                request,
                args=sig.args,
                kwargs=sig.kwargs,
                retries=request.retries + 1,
                children=[],
            )
        # WorkerShutdown/WorkerTerminate always reach the caller: no worker to stop here.
        stop = outcome.kind is OutcomeKind.SHUTDOWN
        if (stop or (outcome.kind is OutcomeKind.FAILURE and throw)) and outcome.exc is not None:
            raise outcome.exc
        value = outcome.retval if outcome.exc is None else outcome.exc
        return EagerResult(task_id, value, outcome.state, outcome.traceback, self.name, app)

    def _eager_request(
        self,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        task_id: str,
        retries: int | None,
        link: Any,
        link_error: Any,
        options: Mapping[str, Any],
    ) -> Request:
        parent = get_current_request()
        return Request(
            id=task_id,
            task=self.name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            retries=retries or 0,
            is_eager=True,
            called_directly=False,
            callbacks=signature_dicts(link),
            errbacks=signature_dicts(link_error),
            chain=options.get("chain"),
            root_id=options.get("root_id") or (parent.root_id if parent else None) or task_id,
            parent_id=options.get("parent_id") or (parent.id if parent else None),
            group=options.get("group_id"),
            ignore_result=bool(options.get("ignore_result", False)),
            timelimit=(options.get("time_limit"), options.get("soft_time_limit")),
            delivery_info={"is_eager": True},
            stamped_headers=stamping.stamp_names(options),
            stamps=stamping.stamps_in(options),
        )

    def retry(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        exc: BaseException | None = None,
        throw: bool = True,
        eta: dt.datetime | None = None,
        countdown: float | None = None,
        max_retries: int | None = None,
        **options: Any,
    ) -> Retry:
        """Re-send this call (after ``countdown``/``eta``); raise ``Retry`` to end this run."""
        request = self.request
        if request.called_directly:
            raise exc if exc is not None else Retry("task can be retried", None)
        retries = request.retries + 1
        limit = self.max_retries if max_retries is None else max_retries
        if limit is not None and retries > limit:
            raise MaxRetriesExceededError(
                f"Can't retry {self.name}[{request.id}]: max_retries={limit} reached",
                task_args=request.args,
                task_kwargs=request.kwargs,
            ) from exc
        if eta is None and countdown is None:
            countdown = self.default_retry_delay
        sig = self.signature_from_request(
            request, args, kwargs, countdown=countdown, eta=eta, retries=retries, **options
        )
        retry = Retry(exc=exc, when=eta or countdown)
        retry.sig = sig
        if throw:
            raise retry
        return retry

    def signature_from_request(
        self,
        request: Request,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        hard, soft = request.timelimit
        call_options: dict[str, Any] = {
            "task_id": request.id,
            "link": request.callbacks,
            "link_error": request.errbacks,
            "chain": request.chain,
            "group_id": request.group,
            "group_index": request.group_index,
            "root_id": request.root_id,
            "parent_id": request.parent_id,
            "priority": request.delivery_info.get("priority"),
            "queue": request.delivery_info.get("routing_key"),
            "time_limit": hard,
            "soft_time_limit": soft,
            "expires": request.expires,
            "idempotency_key": request.idempotency_key,
            "reply_to": request.reply_to,  # rpc://: the retry still answers the caller
            "headers": custom_headers(request.headers) or None,  # a retry keeps them
            "stamped_headers": request.stamped_headers or None,  # and its stamps
        }
        call_options = {k: v for k, v in call_options.items() if v is not None}
        call_options.update(request.stamps)
        call_options.update(options)
        return Signature(
            self,
            request.args if args is None else args,
            request.kwargs if kwargs is None else kwargs,
            call_options,
            app=self.app,
        )

    # -- signatures and results -------------------------------------------------------------

    subtask_from_request = signature_from_request  # Celery's older name

    def signature(
        self,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        **more_options: Any,
    ) -> Signature[AsyncResult[R]]:
        """``add.signature((1,), {"y": 2}, options={...})``; ``.s()``/``.si()`` are short."""
        merged = {**(options or {}), **more_options}
        immutable = bool(merged.pop("immutable", False))
        return Signature(self, args, kwargs, merged, immutable=immutable, app=self.app)

    subtask = signature

    def s(self, *args: Any, **kwargs: Any) -> Signature[AsyncResult[R]]:
        """A partial signature: a chain step gets the previous result before these."""
        return self.signature(args, kwargs)

    def si(self, *args: P.args, **kwargs: P.kwargs) -> Signature[AsyncResult[R]]:
        return self.signature(args, kwargs, immutable=True)

    def map(self, it: Iterable[Any]) -> mapping.xmap:
        """``[task(item) for item in it]`` as one task on a worker."""
        return mapping.xmap(self.signature(), it, app=self.app)

    def starmap(self, it: Iterable[Any]) -> mapping.xstarmap:
        """``[task(*item) for item in it]`` as one task on a worker."""
        return mapping.xstarmap(self.signature(), it, app=self.app)

    def chunks(self, it: Iterable[Any], n: int) -> mapping.chunks:
        """The items in parts of ``n``: a group of one ``starmap`` task per part."""
        return mapping.chunks(self.signature(), it, n, app=self.app)

    @classmethod
    def bind(cls, app: Celeriac) -> Celeriac:
        """Bind this class to ``app`` as registering a task does (Celery's class method)."""
        cls._app = app
        app._bind_task_class(cls)
        return app

    @classmethod
    def annotate(cls) -> None:
        """Apply the app's ``task_annotations`` to this class (``'@name'``: ``add_around``).
        Registering a task does this once; call it again after changing the setting."""
        app = cls._app if cls._app is not None else get_current_app()
        for attributes in app._annotations_for(cls):
            for key, value in attributes.items():
                if key.startswith("@"):
                    cls.add_around(key[1:], value)
                else:
                    setattr(cls, key, value)

    @classmethod
    def add_around(cls, attr: str, around: Callable[[Callable[..., Any]], Any]) -> None:
        """Replace the method ``attr`` with ``around(original)``, which returns the new
        method; ``original`` is the unwrapped method (its ``__wrapped__``), so applying a
        wrapper again replaces the previous one instead of stacking on it."""
        if not hasattr(cls, attr):
            raise AttributeError(
                f"add_around: task {cls.name!r} has no attribute {attr!r} to wrap: name a "
                f"method of the task class, e.g. '__call__', 'run' or 'on_failure'"
            )
        if not callable(around):
            raise TypeError(
                f"add_around({attr!r}): {around!r} is not callable: give a function that "
                f"takes the original method and returns its replacement"
            )
        original = getattr(cls, attr)
        original = getattr(original, "__wrapped__", None) or original
        method = around(original)
        try:
            method.__wrapped__ = original
        except AttributeError:
            raise TypeError(
                f"add_around({attr!r}): {around!r} returned {method!r}, not a function: it "
                f"must return the method that replaces the original"
            ) from None
        setattr(cls, attr, method)

    def AsyncResult(self, task_id: str, **kwargs: Any) -> AsyncResult[R]:
        return AsyncResult(task_id, task_name=self.name, app=self.app, **kwargs)

    def update_state(
        self, task_id: str | None = None, state: str | None = None, meta: Any = None, **_: Any
    ) -> None:
        """Record a custom state (e.g. ``PROGRESS`` with ``meta={'done': 3}``)."""
        request = self.request
        task_id = task_id or request.id
        if task_id is None:
            raise ValueError("update_state() outside a task needs task_id=")
        own = request if task_id == request.id else None  # rpc:// answers the caller of its own
        self.backend.store_result(task_id, meta, state or "PENDING", name=self.name, request=own)

    def send_event(
        self, type_: str, retry: bool = True, retry_policy: Any = None, **fields: Any
    ) -> dict[str, Any] | None:
        """Send a custom event for the running call (its ``uuid`` and the worker's
        hostname), e.g. ``self.send_event('task-progress', done=3)``; with or without -E."""
        request, conf = self.request, self.app.conf
        policy = conf.task_publish_retry_policy if retry_policy is None else retry_policy
        events = self.app.events
        return events.send_task_event(type_, request.id, request.hostname, retry, policy, fields)

    def add_trail(self, result: Any) -> Any:
        """Record ``result`` (a call sent from this run) as a child of the running call."""
        if self.trail:
            self.request.children.append(result)
        return result

    def replace(self, sig: Any) -> Any:
        """End this run and let ``sig`` (a task, chain, group or chord) take its place: its
        id, callbacks, chain and chord. Raises ``Ignore`` on a worker; eagerly, returns the
        replacement's value. Write ``return self.replace(sig)``."""
        return self.on_replace(replacing.replacement(self, sig))

    def on_replace(self, sig: Signature) -> Any:
        """Called by ``replace`` with the replacement; an override must end with
        ``return super().on_replace(sig)``, which applies it."""
        return replacing.apply_replacement(self, sig)

    def add_to_chord(self, sig: Any, lazy: bool = False) -> Any:
        """Make the chord this task is in wait for ``sig`` too (its result joins the
        body's list); returns its result, or ``sig`` unsent when ``lazy``."""
        return replacing.add_to_chord(self, sig, lazy)

    # -- hooks (override in a custom base class) --------------------------------------------
    def shadow_name(self, args: Any, kwargs: Any, options: Any) -> str | None:
        """The name this call shows in the worker's logs and events when ``shadow=`` is
        not given (None: the task's own); ``@app.task(shadow_name=fun)`` sets it too."""
        return None

    @classmethod
    def on_bound(cls, app: Celeriac) -> None:
        """Called with the app when the task class is registered with it."""

    def before_start(self, task_id: str | None, args: Any, kwargs: Any) -> None:
        """Called before the body runs."""

    def on_success(self, retval: Any, task_id: str | None, args: Any, kwargs: Any) -> None:
        """Called after the body returned."""

    def on_failure(
        self, exc: BaseException, task_id: str | None, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after the body raised (the failure is already stored)."""

    def on_retry(
        self, exc: BaseException, task_id: str | None, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called when the body asked to be retried."""

    def after_return(
        self, status: str, retval: Any, task_id: str | None, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Called after every run, whatever its outcome."""

    def __repr__(self) -> str:
        return f"<@task: {self.name}>"
