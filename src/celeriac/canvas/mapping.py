"""``xmap``, ``xstarmap`` and ``chunks``: one task applied to many arguments.

``task.map(items)`` and ``task.starmap(items)`` are one message that a worker runs as one
task (the built-in ``celeriac.map``/``celeriac.starmap``), calling the task's function for
each item: cheap for many small items. ``task.chunks(items, n)`` splits the items into
parts of ``n`` and sends one ``starmap`` per part, as a group.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from celeriac.canvas import workflows
from celeriac.canvas.signature import Signature, maybe_signature
from celeriac.result import AsyncResult, GroupResult


class _Mapping(Signature[AsyncResult[list[Any]]]):  # the built-in task returns the list
    builtin = ""

    def __init__(self, task: Any, it: Iterable[Any], **options: Any) -> None:
        app = options.pop("app", None)
        kwargs = {"task": maybe_signature(task, app=app), "it": list(it)}
        subtask_type = type(self).__name__
        super().__init__(self.builtin, (), kwargs, options, immutable=True, app=app)
        self["subtask_type"] = subtask_type

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        kwargs = data.get("kwargs") or {}
        options = dict(data.get("options") or {})
        return cls(kwargs["task"], kwargs.get("it") or (), app=app, **options)

    def __repr__(self) -> str:
        kwargs = self["kwargs"]
        return f"[{kwargs['task'].get('task')}(x) for x in {kwargs['it']!r}]"


@Signature.register_type()
class xmap(_Mapping):
    """``task.map(items)``: ``[task(item) for item in items]``, in one worker task."""

    builtin = "celeriac.map"


@Signature.register_type()
class xstarmap(_Mapping):
    """``task.starmap(items)``: ``[task(*item) for item in items]``, in one worker task."""

    builtin = "celeriac.starmap"


@Signature.register_type()
class chunks(Signature):
    """``task.chunks(items, n)``: the items in parts of ``n``, one ``starmap`` per part.
    Applying it gives its group's ``GroupResult`` (``freeze`` stays the base one's)."""

    is_workflow = True

    def __init__(self, task: Any, it: Iterable[Any], n: int, **options: Any) -> None:
        if int(n) < 1:
            raise ValueError(f"chunks(..., n={n!r}): n must be a positive whole number")
        app = options.pop("app", None)
        kwargs = {"task": maybe_signature(task, app=app), "it": list(it), "n": int(n)}
        super().__init__("celeriac.chunks", (), kwargs, options, app=app)
        self["subtask_type"] = "chunks"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], app: Any = None) -> Signature:
        kwargs = data.get("kwargs") or {}
        options = dict(data.get("options") or {})
        return cls(kwargs["task"], kwargs.get("it") or (), kwargs["n"], app=app, **options)

    def group(self) -> workflows.group:
        kwargs = self["kwargs"]
        items, size, task = kwargs["it"], kwargs["n"], kwargs["task"]
        parts = [items[i : i + size] for i in range(0, len(items), size)]
        app = self._app_or_none()
        parts_sigs = [xstarmap(task, part, app=app) for part in parts]
        return workflows.group(parts_sigs, app=app, **self.options)

    def as_part(self) -> Signature:
        return self.group()

    def apply_async(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        return self.group().apply_async(args, kwargs, **options)

    def apply(
        self,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> GroupResult:
        return self.group().apply(args, kwargs, **options)

    def __call__(self, *args: Any, **kwargs: Any) -> GroupResult:
        return self.apply_async(args, kwargs)
