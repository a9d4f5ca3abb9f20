"""``Signature``: a task call as plain data (task name, args, kwargs, options).

A ``Signature`` is a dict, so it travels inside messages as JSON and comes back with
``signature(d)``, which rebuilds the right kind (a chain, a group, a chord...) from its
``subtask_type``. It reaches its task through the app it was made by (or the current
app) at call time. The workflow kinds live in ``canvas.workflows`` and register here.
Each kind is typed by the result its ``apply_async`` returns: ``Signature[AsyncResult[R]]``
for a task call (``add.s(1, 2)``), ``group`` gives a ``GroupResult``.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeAlias, TypeVar, cast, overload

from celeriac._context import get_current_app
from celeriac.canvas import stamping
from celeriac.result import AsyncResult, GroupResult

if TYPE_CHECKING:
    # A default lets a bare ``Signature`` mean "any kind", so it needs typing_extensions'
    # TypeVar (3.13's); at run time a plain covariant TypeVar does the same job.
    from typing_extensions import TypeVar as DefaultTypeVar

    from celeriac.app.base import Celeriac
    from celeriac.canvas.workflows import chain, chord
    from celeriac.task import Task

S = TypeVar("S", bound="type[Signature]")
T = TypeVar("T")

#: What applying some signature gives: a task's result, or a group's (a chain or chord
#: gives its last step's, which may be a group).
AnyResult: TypeAlias = AsyncResult[Any] | GroupResult
_TaskResult = AsyncResult  # the class, under a name Signature.AsyncResult does not hide

if TYPE_CHECKING:
    ResultT = DefaultTypeVar("ResultT", bound=AnyResult, covariant=True, default=AnyResult)
else:
    ResultT = TypeVar("ResultT", covariant=True)


def new_id() -> str:
    """A fresh task id (a UUID4 string, as Celery's)."""
    return str(uuid.uuid4())


def signature_dicts(value: Any) -> list[dict[str, Any]] | None:
    """``link``/``link_error`` as they travel: one signature or several, as a list of plain
    dicts; None when there are none."""
    if value is None:
        return None
    items = [value] if isinstance(value, Mapping) else list(value)
    return [dict(item) for item in items] or None


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, Mapping):  # one signature
        return [value]
    return list(value)


class Signature(dict[str, Any], Generic[ResultT]):
    """A task call that can be passed around, stored, and applied later; ``ResultT`` is
    what applying it returns."""

    TYPES: ClassVar[dict[str, type[Signature]]] = {}
    is_workflow: ClassVar[bool] = False  # made of other signatures (chain, group, chord)

    def __init__(
        self,
        task: Any = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        type: Any = None,
        subtask_type: str | None = None,
        immutable: bool = False,
        app: Any = None,
        **extra: Any,
    ) -> None:
        self._app = app
        self._type = None
        if isinstance(task, Mapping):  # signature(dict) round trip
            super().__init__(copy.deepcopy(dict(task)))
            self.setdefault("options", {})
            self.setdefault("immutable", False)
            return
        self._type = type if type is not None else (task if not isinstance(task, str) else None)
        name = task if isinstance(task, str) else getattr(task, "name", None)
        super().__init__(
            task=name,
            args=tuple(args or ()),
            kwargs=dict(kwargs or {}),
            options={**(options or {}), **extra},
            subtask_type=subtask_type,
            immutable=immutable,
        )

    @classmethod
    def register_type(cls, name: str | None = None) -> Callable[[S], S]:
        """Class decorator: ``signature(d)`` rebuilds dicts whose ``subtask_type`` is
        ``name`` (the class name by default) as this class."""

        def register(kind: S) -> S:
            cls.TYPES[name or kind.__name__] = kind
            return kind

        return register

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        kind = cls.TYPES.get(str(data.get("subtask_type")))
        if kind is not None and kind is not cls:
            return kind.from_dict(data, app=app)
        return cls(data, app=app)

    # -- fields -----------------------------------------------------------------------------
    @property
    def task(self) -> str:
        return str(self["task"])

    name = task

    @property
    def args(self) -> tuple[Any, ...]:
        return tuple(self.get("args") or ())

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.get("kwargs") or {})

    @property
    def options(self) -> dict[str, Any]:
        options: dict[str, Any] = self.setdefault("options", {})
        return options

    @property
    def immutable(self) -> bool:
        return bool(self.get("immutable"))

    @property
    def subtask_type(self) -> str | None:
        return self.get("subtask_type")

    @property
    def id(self) -> str | None:
        """The task id (``options["task_id"]``), set by ``freeze`` or by hand."""
        return self.options.get("task_id")

    @id.setter
    def id(self, value: str | None) -> None:
        self.options["task_id"] = value

    @property
    def root_id(self) -> str | None:
        """The id of the first task of the workflow this call belongs to."""
        return self.options.get("root_id")

    @root_id.setter
    def root_id(self, value: str | None) -> None:
        self.options["root_id"] = value

    @property
    def parent_id(self) -> str | None:
        """The id of the task that sent this call."""
        return self.options.get("parent_id")

    @parent_id.setter
    def parent_id(self, value: str | None) -> None:
        self.options["parent_id"] = value

    @property
    def app(self) -> Celeriac:
        own: Celeriac | None = getattr(self, "_app", None)
        return own if own is not None else get_current_app()

    @property
    def type(self) -> Task[..., Any]:
        """The registered task this signature calls."""
        cached: Task[..., Any] | None = getattr(self, "_type", None)
        return cached if cached is not None else self.app.tasks[self.task]

    @property
    def AsyncResult(self) -> Callable[..., Any]:
        """The result class of the call, as Celery's: the task's ``AsyncResult`` (a base
        class may have its own), or the app's when the task is not registered here."""
        try:
            return self.type.AsyncResult
        except KeyError:  # (NotRegistered) a task known only by name
            return self.app.AsyncResult

    # -- building ---------------------------------------------------------------------------
    def _merge(
        self,
        args: Iterable[Any] | None,
        kwargs: Mapping[str, Any] | None,
        options: Mapping[str, Any] | None,
    ) -> tuple[tuple[Any, ...], dict[str, Any], dict[str, Any]]:
        merged_options = stamping.merge_options(self.options, options or {})
        if self.immutable:
            return self.args, self.kwargs, merged_options
        # As in Celery, call-time args go first: a chain passes the previous result as
        # the first argument of the next task.
        return tuple(args or ()) + self.args, {**self.kwargs, **(kwargs or {})}, merged_options

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Signature:
        """A deep copy, with ``args`` put first, ``kwargs`` and ``options`` merged in."""
        new_args, new_kwargs, new_options = self._merge(args, kwargs, options)
        cloned = Signature(
            self.task,
            new_args,
            new_kwargs,
            copy.deepcopy(new_options),
            subtask_type=self.subtask_type,
            immutable=self.immutable,
            app=getattr(self, "_app", None),
        )
        cloned._type = getattr(self, "_type", None)
        return cloned

    partial = clone

    def replace(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Signature:
        """A copy with ``args``, ``kwargs`` or ``options`` replaced (each one given)."""
        copied = self.clone()
        if args is not None:
            copied["args"] = tuple(args)
        if kwargs is not None:
            copied["kwargs"] = dict(kwargs)
        if options is not None:
            copied["options"] = dict(options)
        return copied

    def append_to_list_option(self, key: str, value: Any) -> Any:
        """Add ``value`` to the list option ``key`` (once); returns ``value``."""
        items = self.options[key] = _as_list(self.options.get(key))
        if value not in items:
            items.append(value)
        return value

    def extend_list_option(self, key: str, value: Any) -> None:
        """Add ``value`` (one item or several) to the list option ``key``."""
        self.options[key] = [*_as_list(self.options.get(key)), *_as_list(value)]

    def flatten_links(self) -> list[Signature]:
        """This signature and, depth first, every callback linked to it and to those."""
        flat: list[Signature] = [self]
        for link in _as_list(self.options.get("link")):
            flat.extend(maybe_signature(link, app=self._app_or_none()).flatten_links())
        return flat

    def reprcall(self, *args: Any, **kwargs: Any) -> str:
        """``add(2, 2)``: the call with ``args``/``kwargs`` merged in as a chain step would
        get them (this signature is not changed)."""
        merged_args = tuple(args) + self.args
        merged_kwargs = {**self.kwargs, **kwargs}
        parts = [repr(a) for a in merged_args] + [f"{k}={v!r}" for k, v in merged_kwargs.items()]
        return f"{self.get('task')}({', '.join(parts)})"

    def set(self, immutable: bool | None = None, **options: Any) -> Signature:
        """Set call options (countdown, queue, ...); returns the signature for chaining."""
        if immutable is not None:
            self["immutable"] = immutable
        self.options.update(options)
        return self

    def set_immutable(self, immutable: bool) -> None:
        self["immutable"] = immutable

    def link(self, callback: Mapping[str, Any]) -> Mapping[str, Any]:
        """Apply ``callback`` with this task's result when it succeeds."""
        self.options["link"] = [*_as_list(self.options.get("link")), callback]
        return callback

    def link_error(self, errback: Mapping[str, Any]) -> Mapping[str, Any]:
        """Call ``errback`` once if this task fails (new style: ``(request, exc, tb)``)."""
        self.options["link_error"] = [*_as_list(self.options.get("link_error")), errback]
        return errback

    def on_error(self, errback: Mapping[str, Any]) -> Signature:
        self.link_error(errback)
        return self

    def stamp(
        self,
        visitor: stamping.StampingVisitor | None = None,
        append_stamps: bool = False,
        **headers: Any,
    ) -> Signature[ResultT]:
        """Add stamps (``headers``, and what ``visitor`` gives) to this call and to what it
        links; a workflow stamps every task in it. On a clash the keyword stamps win over
        the visitor's and both over earlier ones; ``append_stamps=True`` keeps all, as a
        list. Stamps travel in the message; the task reads ``self.request.stamps``."""
        headers = stamping.checked(headers)
        self.stamp_links(visitor, append_stamps, **headers)
        own = stamping.visit(visitor, "on_signature", self, headers)
        earlier = stamping.stamps_in(self.options)
        stamps = stamping.merge(headers, own, earlier, append=append_stamps)
        stamping.set_stamps(self.options, stamps)
        return self

    def stamp_links(
        self,
        visitor: stamping.StampingVisitor | None = None,
        append_stamps: bool = False,
        **headers: Any,
    ) -> None:
        """Stamp the callbacks and errbacks (``link``, ``link_error``) with ``headers`` and
        the visitor's ``on_callback``/``on_errback``, not with this signature's own stamps."""
        headers = stamping.checked(headers)
        for option, method in (("link", "on_callback"), ("link_error", "on_errback")):
            if not self.options.get(option):
                continue
            app = self._app_or_none()
            links = [maybe_signature(raw, app=app) for raw in _as_list(self.options[option])]
            for link in links:
                extra = stamping.visit(visitor, method, link, headers)
                merged = stamping.merge(headers, extra, append=append_stamps)
                link.stamp(visitor, append_stamps, **merged)
            self.options[option] = links

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Mapping[str, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> ResultT:
        """Fix the task id (and group membership, root and parent ids) now; return the
        result it will have."""
        options = self.options
        task_id = options.setdefault("task_id", _id or new_id())
        if root_id:
            options["root_id"] = root_id
        if parent_id:
            options["parent_id"] = parent_id
        if group_id is not None:
            options["group_id"] = group_id
        if group_index is not None:
            options["group_index"] = group_index
        if chord is not None:
            options["chord"] = chord
        # A plain task call's result; the workflow kinds override this with their own.
        return cast(ResultT, self.app.AsyncResult(task_id, task_name=self.get("task")))

    def as_part(self) -> Signature:
        """What this becomes inside a workflow (``chunks`` becomes its group)."""
        return self

    # A signature's ``|`` chains, as in Celery, where dict's merges: the one override that
    # cannot match dict's. ``sig | {...}`` still merges (dict's ``__ror__``, both at run
    # time and for type checkers, since ``other`` takes only signatures).
    def __or__(self, other: Signature) -> chain | chord:  # type: ignore[override]
        """``a.s() | b.s()``: a chain (``group | task`` is a chord, so the kinds share this
        union; each kind narrows it to the one it returns)."""
        if not isinstance(other, Signature):
            return NotImplemented
        made = self.TYPES["chain"](self, other, app=getattr(self, "_app", None))
        return cast("chain", made)

    def __ior__(self, other: Signature) -> chain | chord:  # type: ignore[override]  # not dict's
        """``sig |= other`` is ``sig = sig | other`` (a chain), not dict's in-place merge."""
        return self.__or__(other)

    # -- calling ----------------------------------------------------------------------------
    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ResultT:
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        # A plain task call gives an AsyncResult; the workflow kinds override this.
        try:
            task = self.type
        except KeyError:  # not registered here: send by name, as Celery's send_task
            sent = self.app.send_task(self.task, call_args, call_kwargs, **call_options)
            return cast(ResultT, sent)
        return cast(ResultT, task.apply_async(call_args, call_kwargs, **call_options))

    def delay(self, *args: Any, **kwargs: Any) -> ResultT:
        return self.apply_async(args, kwargs)

    @overload
    def __invert__(self: Signature[_TaskResult[T]]) -> T: ...
    @overload
    def __invert__(self: Signature[GroupResult]) -> list[Any]: ...
    @overload
    def __invert__(self) -> Any: ...  # a chain or chord: its last step's value

    def __invert__(self) -> Any:
        """``~sig``: apply it and wait for its value (``sig.apply_async().get()``); a
        workflow goes through its own ``apply_async``."""
        return self.apply_async().get()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the task's function in this process, like ``task(*args)``."""
        call_args, call_kwargs, _ = self._merge(args, kwargs, None)
        return self.type(*call_args, **call_kwargs)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> ResultT:
        """Run it here and now (eagerly); returns an ``EagerResult``."""
        call_args, call_kwargs, call_options = self._merge(args, kwargs, options)
        return cast(ResultT, self.type.apply(call_args, call_kwargs, **call_options))

    def __repr__(self) -> str:
        parts = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs.items()]
        mark = "si" if self.immutable else "s"
        return f"{self.get('task')}.{mark}({', '.join(parts)})"

    def __deepcopy__(self, memo: dict[int, Any]) -> Signature:
        copied = type(self).from_dict(copy.deepcopy(dict(self), memo), app=self._app_or_none())
        copied._type = getattr(self, "_type", None)
        return copied

    def _app_or_none(self) -> Any:
        return getattr(self, "_app", None)

    def __reduce__(self) -> tuple[Any, ...]:
        return (signature, (dict(self),))


def signature(varies: Any, *args: Any, **kwargs: Any) -> Signature:
    """Build a Signature from a task name, a task, or a dict (the JSON form); a dict
    comes back as the kind it was (``chain``, ``group``, ``chord``...)."""
    if isinstance(varies, Signature):
        return varies.clone()
    if isinstance(varies, Mapping):
        return Signature.from_dict(varies, app=kwargs.get("app"))
    return Signature(varies, *args, **kwargs)


def maybe_signature(value: Any, app: Any = None) -> Any:
    """``value`` as a Signature (None stays None; a Signature is returned as is)."""
    if value is None or isinstance(value, Signature):
        if isinstance(value, Signature) and app is not None and value._app_or_none() is None:
            value._app = app
        return value
    return signature(value, app=app)


subtask = signature
