"""Workflows: ``chain``, ``group`` and ``chord``, each a ``Signature`` made of others.

Wire form (what messages carry, and what ``signature(d)`` rebuilds), as in Celery:
a chain or group keeps its parts in ``kwargs["tasks"]``, a chord in ``kwargs["header"]``
(a group) and ``kwargs["body"]``.

How they run on workers, with no coordinator: a chain sends its first task carrying the
rest (``chain`` option, reversed), and each task, on success, sends the next one. A group
sends every member in one ``publish_many`` round trip. A chord saves its header's task
ids in the result backend and sends the header with the body attached to each member; the
header task that completes the header applies the body (see ``followups``). Each form
also runs eagerly (``apply``, or ``task_always_eager``) with the same results.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from celeriac import followups, states
from celeriac._context import get_current_app
from celeriac.canvas import stamping
from celeriac.canvas.signature import AnyResult, ResultT, Signature, maybe_signature, new_id
from celeriac.exceptions import ChordError
from celeriac.result import EagerResult, GroupResult

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

W = TypeVar("W", bound="_Workflow")


def _eager(app: Any) -> bool:
    return bool(app.conf.task_always_eager)


def _signatures(tasks: Iterable[Any], app: Any) -> list[Signature]:
    return [maybe_signature(task, app=app).as_part() for task in tasks]


def _tasks_of(args: tuple[Any, ...]) -> Iterable[Any]:
    """``chain(a, b)`` or ``chain([a, b])``; ``group(a, b)``, ``group([a, b])`` or a generator."""
    if len(args) == 1 and not isinstance(args[0], Mapping):
        return list(args[0])
    return args


class _Workflow(Signature[ResultT]):
    """What chain, group and chord share; each rebuilds itself in its own ``from_dict``."""

    is_workflow = True

    @property
    def app(self) -> Celeriac:
        """Its own app, else that of its first task bound to one (``group(app.signature(
        ...))`` sends through ``app``, as in Celery), else the current app."""
        found = self._bound_app()
        return found if found is not None else get_current_app()

    @property
    def tasks(self) -> list[Signature]:
        """Its parts in order (a chord's: its header's); each kind has its own."""
        raise NotImplementedError

    def _bound_app(self) -> Celeriac | None:
        own: Celeriac | None = self._app_or_none()
        if own is not None:
            return own
        for task in self.tasks:
            found = task._bound_app() if isinstance(task, _Workflow) else task._app_or_none()
            if found is not None:
                return cast("Celeriac", found)
        return None

    def clone(
        self: W,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> W:
        """A deep copy of the same kind: its parts are copied too, so freezing the copy
        leaves this as is."""
        cloned = copy.deepcopy(self)
        if args and not self.immutable:
            cloned["args"] = tuple(args) + self.args
        cloned.options.update(options)
        return cloned

    def _restore(self: W, data: Mapping[str, Any]) -> W:
        """Copy the fields every kind shares from its wire form (after ``__init__``)."""
        self["args"] = tuple(data.get("args") or ())
        self["immutable"] = bool(data.get("immutable"))
        return self

    def _call_args(self, args: Iterable[Any] | None) -> tuple[Any, ...]:
        return self.args if self.immutable else tuple(args or ()) + self.args

    def stamp(
        self,
        visitor: stamping.StampingVisitor | None = None,
        append_stamps: bool = False,
        **headers: Any,
    ) -> Signature[ResultT]:
        """Stamp every task call in it (``on_chain_start``, ``on_group_start`` or
        ``on_chord_header_start`` add to all of them; ``on_chord_body`` to a chord's body)."""
        stamping.stamp_workflow(self, visitor, append_stamps, stamping.checked(headers))
        return self


@Signature.register_type()
class chain(_Workflow[AnyResult]):
    """Run tasks one after another, each receiving the previous one's result first
    (unless it is immutable, ``.si()``). ``a.s() | b.s()`` is ``chain(a.s(), b.s())``."""

    def __init__(self, *tasks: Any, app: Any = None, **options: Any) -> None:
        steps = _normalize(_signatures(_tasks_of(tasks), app), app)
        super().__init__("celeriac.chain", (), {"tasks": steps}, options, app=app)
        self["subtask_type"] = "chain"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        tasks = (data.get("kwargs") or {}).get("tasks") or ()
        made = cls(*_signatures(tasks, app), app=app, **dict(data.get("options") or {}))
        return made._restore(data)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self["kwargs"]["tasks"]
        return tasks

    def __or__(self, other: Signature) -> chain:  # type: ignore[override]  # not dict's |
        if not isinstance(other, Signature):
            return NotImplemented
        joined = chain(*self.tasks, other, app=self._app_or_none(), **self.options)
        return joined._restore(self)

    def unchain_tasks(self) -> list[Signature]:
        """Copies of the steps, with the chain's own callbacks on the last one and its
        errbacks on each (what the chain's options would have done)."""
        tasks = [task.clone() for task in self.tasks]
        for callback in _as_list(self.options.get("link")):
            tasks[-1].link(callback)
        for errback in _as_list(self.options.get("link_error")):
            for task in tasks:
                task.link_error(errback)
        return tasks

    def link(self, callback: Mapping[str, Any]) -> Mapping[str, Any]:
        """Called with the chain's result: linked to its last task."""
        return self.tasks[-1].link(callback)

    def link_error(self, errback: Mapping[str, Any]) -> Mapping[str, Any]:
        """Whichever task fails calls it (the rest never run): linked to every task."""
        for task in self.tasks:
            task.link_error(errback)
        return errback

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Mapping[str, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> AnyResult:
        """The chain's result is its last task's; each result's ``parent`` is the step
        before. Group membership (in a group, or a chord's header) goes to the last task;
        ``root_id`` to every step, ``parent_id`` to the first."""
        previous: AnyResult | None = None
        steps = self.tasks
        for index, step in enumerate(steps):
            parent = parent_id if index == 0 else None
            if index == len(steps) - 1:
                result = step.freeze(_id, group_id, chord, root_id, parent, group_index=group_index)
            else:
                result = step.freeze(root_id=root_id, parent_id=parent)
            _set_root_parent(result, previous)
            previous = result
        # None only for an empty chain, which has nothing to send or run.
        return cast(AnyResult, previous)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        if _eager(self.app):
            return self.apply(args, kwargs, **options)
        frozen = self.clone()
        rest = list(options.pop("chain", None) or ())
        result = frozen.freeze(options.pop("task_id", None))
        first, *others = frozen.tasks
        backend = first.app.backend  # the app that sends the first step: the caller's
        if any(isinstance(step, chord) for step in others):  # refused here, not mid-chain
            backend.ensure_chords_allowed()
        reply_to = options.get("reply_to") or backend.reply_address()
        for step in others if reply_to else ():  # rpc://: every step answers this caller
            step.options.setdefault("reply_to", reply_to)
        # The rest travels reversed, so each task pops the next step off the end.
        following = rest + [dict(step) for step in reversed(others)]
        call_options = {**frozen.options, **options}
        first.apply_async(frozen._call_args(args), kwargs, chain=following or None, **call_options)
        return result

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        """Run each step here, in turn; a failed step ends the chain with its error."""
        frozen = self.clone()
        last_id = str(frozen.freeze(options.pop("task_id", None)).id)  # frozen: always set
        call_args: tuple[Any, ...] = frozen._call_args(args)
        previous: AnyResult | None = None
        for index, step in enumerate(frozen.tasks):
            result = step.apply(call_args, kwargs if index == 0 else None, **options)
            _set_root_parent(result, previous)
            previous = result
            if not _succeeded(result):
                error = _error_of(result)
                return EagerResult(last_id, error, states.FAILURE, app=self.app)
            call_args = (result.get(disable_sync_subtasks=False),)
        return cast(AnyResult, previous)  # None only for an empty chain

    def __call__(self, *args: Any, **kwargs: Any) -> AnyResult:
        return self.apply_async(args, kwargs)

    def __repr__(self) -> str:
        return " | ".join(repr(task) for task in self.tasks) or "chain()"


@Signature.register_type()
class group(_Workflow[GroupResult]):
    """Run tasks in parallel; the result is a ``GroupResult`` (values in task order)."""

    def __init__(self, *tasks: Any, app: Any = None, **options: Any) -> None:
        members = _signatures(_tasks_of(tasks), app)
        super().__init__("celeriac.group", (), {"tasks": members}, options, app=app)
        self["subtask_type"] = "group"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        tasks = (data.get("kwargs") or {}).get("tasks") or ()
        made = cls(_signatures(tasks, app), app=app, **dict(data.get("options") or {}))
        return made._restore(data)

    @property
    def tasks(self) -> list[Signature]:
        tasks: list[Signature] = self["kwargs"]["tasks"]
        return tasks

    def clone(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> group:
        """A copy whose members are copies (each with options of its own), so freezing
        it leaves this as is. Arguments are shared, as Celery's ``clone`` shares them:
        deep-copying a thousand members' arguments was most of ``apply_async``'s time."""
        members = [
            task.clone() if type(task) is Signature else copy.deepcopy(task) for task in self.tasks
        ]
        cloned = group(members, app=self._app_or_none(), **copy.deepcopy(self.options))
        cloned._restore(self)
        if args and not self.immutable:
            cloned["args"] = tuple(args) + self.args
        cloned.options.update(options)
        return cloned

    def __or__(self, other: Signature) -> chord:  # type: ignore[override]  # not dict's |
        """``group | task`` is a chord: the task receives the list of the group's results."""
        if not isinstance(other, Signature):
            return NotImplemented
        return chord(self, other, app=self._app_or_none())

    def link(self, callback: Mapping[str, Any]) -> Mapping[str, Any]:
        for task in self.tasks:
            task.link(callback)
        return callback

    def link_error(self, errback: Mapping[str, Any]) -> Mapping[str, Any]:
        for task in self.tasks:
            task.link_error(errback)
        return errback

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Mapping[str, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> GroupResult:
        """Fix the group id and every member's id; members of a chord's header also carry
        the chord (``chord``), and every member the root and parent ids. A group nested in
        a group keeps an id of its own."""
        own_id = self.options.setdefault("task_id", _id or new_id())
        ids = {"root_id": root_id, "parent_id": parent_id}
        results = [
            task.freeze(group_id=own_id, chord=chord, group_index=index, **ids)
            for index, task in enumerate(self.tasks)
        ]
        return GroupResult(own_id, results, app=self.app)

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        if _eager(self.app):
            return self.apply(args, kwargs, **options)
        add_to_parent = options.pop("add_to_parent", True)
        rest = options.pop("chain", None)
        if rest:  # steps follow this group: they wait for all of it, as a chord's body
            body = chain(*[self.app.signature(step) for step in reversed(rest)], app=self.app)
            made = chord(self, body, app=self._app_or_none())
            # ``chain=`` is the workers' own option (a group sent mid-chain, its result
            # unused); the result is then the chord's, not a GroupResult.
            return cast(GroupResult, made.apply_async(args, kwargs, **options))
        frozen = self.clone()
        result = frozen.freeze(options.pop("task_id", None))
        frozen._send(frozen._call_args(args), kwargs, {**frozen.options, **options})
        parent = self.app.current_worker_task if add_to_parent else None
        if parent is not None:  # sent from a task: the group is one of its children
            parent.add_trail(result)
        return result

    def _send(self, args: tuple[Any, ...], kwargs: Any, options: dict[str, Any]) -> None:
        """Plain task calls go out together in one ``publish_many``; workflows one by one."""
        options.pop("task_id", None)
        batch = []
        for task in self.tasks:
            if task.is_workflow:  # part of this group, not a child of the sending task
                task.apply_async(args, kwargs, add_to_parent=False, **options)
                continue
            call_args, call_kwargs, call_options = task._merge(args, kwargs, options)
            for key in ("task_id", "group_id", "group_index", "chord"):  # the member's own
                call_options[key] = task.options.get(key)
            batch.append((task.task, call_args, call_kwargs, call_options))
        self.app.send_task_many(batch)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        frozen = self.clone()
        group_id = frozen.freeze(options.pop("task_id", None)).id
        call_args = frozen._call_args(args)
        results = [task.apply(call_args, kwargs, **options) for task in frozen.tasks]
        return GroupResult(group_id, results, app=self.app)

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)

    def __len__(self) -> int:
        """The number of members, as Celery's (not the dict's number of fields)."""
        return len(self.tasks)

    def skew(self, start: float = 1.0, stop: float | None = None, step: float = 1.0) -> group:
        """Spread the members out: countdowns ``start``, ``start + step``, ... (held at
        ``stop`` once reached)."""
        countdown = start
        for task in self.tasks:
            task.set(countdown=countdown)
            if stop is None or countdown + step <= stop:
                countdown += step
        return self

    def __repr__(self) -> str:
        return f"group([{', '.join(repr(task) for task in self.tasks)}])"


@Signature.register_type()
class chord(_Workflow[AnyResult]):
    """Run the header (a group) in parallel, then the body with the list of its results,
    in header order. A failed header task fails the chord: the body never runs and its
    errbacks are called once with a ``ChordError``."""

    def __init__(
        self,
        header: Any,
        body: Any = None,
        *,
        app: Any = None,
        **options: Any,
    ) -> None:
        members = header.tasks if isinstance(header, group) else _tasks_of((header,))
        header_options = dict(header.options) if isinstance(header, group) else {}
        flat = group(_flatten(_signatures(members, app)), app=app, **header_options)
        body_sig = maybe_signature(body, app=app)
        kwargs = {"header": flat, "body": body_sig}
        super().__init__("celeriac.chord", (), kwargs, options, app=app)
        self["subtask_type"] = "chord"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        kwargs = data.get("kwargs") or {}
        header = Signature.from_dict(kwargs["header"], app=app)
        body = kwargs.get("body")
        body = None if body is None else Signature.from_dict(body, app=app)
        made = cls(header, body, app=app, **dict(data.get("options") or {}))
        return made._restore(data)

    @property
    def header(self) -> group:
        header: group = self["kwargs"]["header"]
        return header

    @property
    def tasks(self) -> list[Signature]:
        return self.header.tasks

    def __length_hint__(self) -> int:
        """The number of header tasks (a group in the header adds its members)."""
        return len(self.header.tasks)

    @property
    def body(self) -> Signature:
        body: Signature | None = self["kwargs"]["body"]
        if body is None:
            raise TypeError("this chord has no body: chord(header, body), or chord(header)(body)")
        return body

    def __or__(self, other: Signature) -> chord:  # type: ignore[override]  # not dict's |
        """``chord | task``: the task follows the body."""
        if not isinstance(other, Signature):
            return NotImplemented
        joined = chord(self.header, self.body | other, app=self._app_or_none(), **self.options)
        return joined._restore(self)

    def link(self, callback: Mapping[str, Any]) -> Mapping[str, Any]:
        return self.body.link(callback)

    def link_error(self, errback: Mapping[str, Any]) -> Mapping[str, Any]:
        """The body's errback: called once if the body fails, or if the header fails. With
        ``task_allow_error_cb_on_chord_header``, also each failing header task's (as an
        immutable copy), as Celery's."""
        app = self.app
        if app.conf.task_allow_error_cb_on_chord_header:
            for task in self.header.tasks:
                task.link_error(maybe_signature(errback, app=app).clone().set(immutable=True))
        return self.body.link_error(errback)

    def freeze(
        self,
        _id: str | None = None,
        group_id: str | None = None,
        chord: Mapping[str, Any] | None = None,
        root_id: str | None = None,
        parent_id: str | None = None,
        group_index: int | None = None,
    ) -> AnyResult:
        """The chord's result is its body's, whose ``parent`` is the header's group."""
        header_result = self.header.freeze(root_id=root_id, parent_id=parent_id)
        result = self.body.freeze(_id, group_id, chord, root_id, group_index=group_index)
        _set_root_parent(result, header_result)
        return result

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        app = self.app
        if _eager(app):
            return self.apply(args, kwargs, **options)
        app.backend.ensure_chords_allowed()  # no store, or one only the caller reads
        frozen = self.clone()
        rest = options.pop("chain", None)
        if rest:  # steps follow this chord: they follow its body
            steps = [app.signature(step) for step in reversed(rest)]
            frozen["kwargs"]["body"] = chain(frozen.body, *steps, app=app)
        result = frozen.freeze(options.pop("task_id", None))
        header = frozen.header
        body = dict(frozen.body)
        body["chord_size"] = len(header.tasks)
        group_id = str(header.options["task_id"])
        app.backend.save_group(group_id, [task.freeze().id for task in header.tasks])
        if not header.tasks:  # nothing to wait for
            app.signature(body).apply_async(([],))
            return result
        header.freeze(chord=body)  # every member carries the body and the group id
        header.apply_async(frozen._call_args(args), kwargs, **{**frozen.options, **options})
        return result

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> AnyResult:
        """Run the header here, then the body with its results (or fail it)."""
        frozen = self.clone()
        body_id = str(frozen.freeze(options.pop("task_id", None)).id)  # frozen: always set
        header_result = frozen.header.apply(frozen._call_args(args), kwargs, **options)
        failed = next((r for r in header_result.results if not _succeeded(r)), None)
        if failed is None:
            values = header_result.get(disable_sync_subtasks=False)
            result = frozen.body.apply((values,))
            _set_root_parent(result, header_result)
            return result
        error = ChordError(f"Dependency {failed.id} raised {_error_of(failed)!r}")
        followups.fail_chord(self.app, dict(frozen.body), error, store=False)
        return EagerResult(body_id, error, states.FAILURE, app=self.app)

    def __call__(self, body: Any = None, **options: Any) -> AnyResult:
        """``chord(header)(body)`` sends it; ``chord(header, body)()`` too."""
        if body is not None:
            made = chord(self.header, body, app=self._app_or_none(), **self.options)
            return made.apply_async(**options)
        return self.apply_async(**options)

    def __repr__(self) -> str:
        body = self["kwargs"].get("body")
        return f"chord({self.header!r}, {body!r})"


def _normalize(steps: list[Signature], app: Any) -> list[Signature]:
    """Flatten nested chains, and turn a group followed by a step into a chord whose body
    is that step (a group's results can only flow on once all of them are in)."""
    flat: list[Signature] = []
    for step in steps:
        if isinstance(step, chain) and not step.options and not step.args:
            flat.extend(step.tasks)
        else:
            flat.append(step)
    normalized: list[Signature] = []
    for step in flat:
        if normalized and isinstance(normalized[-1], group):
            normalized[-1] = chord(normalized[-1], step, app=app)
        else:
            normalized.append(step)
    return normalized


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, Mapping) else list(value)


def _flatten(members: list[Signature]) -> list[Signature]:
    """A group inside a chord's header adds its members to the header."""
    flat: list[Signature] = []
    for member in members:
        flat.extend(_flatten(member.tasks) if isinstance(member, group) else [member])
    return flat


def _set_root_parent(result: Any, parent: Any) -> None:
    """Make ``parent`` the parent of the earliest result in ``result``'s parent line."""
    if parent is None or result is None:
        return
    node = result
    while getattr(node, "parent", None) is not None:
        node = node.parent
    if node is not parent:
        node.parent = parent


def _succeeded(result: Any) -> bool:
    if isinstance(result, GroupResult):
        return all(_succeeded(r) for r in result.results)
    return bool(result.state == states.SUCCESS)


def _error_of(result: Any) -> Any:
    if isinstance(result, GroupResult):
        return next(_error_of(r) for r in result.results if not _succeeded(r))
    return result.result
