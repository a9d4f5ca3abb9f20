"""``@app.task(pydantic=True)``: arguments annotated with a pydantic model are validated
into that model before the body runs, and a returned model is dumped to plain data.

App core (``celeriac.app``): imports leaves only, and pydantic (the optional extra
``celeriac[pydantic]``) when a task asks for it. The caller's side dumps the models it
passes (``dump_arguments``), so a call with models can be serialized as JSON.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

OPTIONS = ("pydantic", "pydantic_strict", "pydantic_context", "pydantic_dump_kwargs")


def _base_model() -> type:
    try:
        pydantic = importlib.import_module("pydantic")
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            "@app.task(pydantic=True) needs pydantic 2: pip install 'celeriac[pydantic]'"
        ) from exc
    return typing.cast(type, pydantic.BaseModel)


def _unwrap_optional(annotation: Any) -> Any:
    """``Model`` for ``Model | None`` / ``Optional[Model]``; the annotation otherwise."""
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return annotation
    members = typing.get_args(annotation)
    others = [member for member in members if member is not type(None)]
    return others[0] if len(members) == 2 and len(others) == 1 else annotation


def _model_class(annotation: Any, base_model: type) -> type | None:
    annotation = _unwrap_optional(annotation)
    if inspect.isclass(annotation) and issubclass(annotation, base_model):
        return annotation
    return None


class PydanticTask:
    """The body wrapped for one task: validation in, dumping out, and the caller's dump."""

    def __init__(
        self,
        app: Any,
        fun: Callable[..., Any],
        name: str,
        strict: bool = False,
        context: Mapping[str, Any] | None = None,
        dump_kwargs: Mapping[str, Any] | None = None,
        bound: bool = False,
    ) -> None:
        self.base_model = _base_model()
        self.fun, self.bound = fun, bound
        self.strict = strict
        # Celery's context keys, so validators written for Celery keep working.
        self.context = {**(context or {}), "celery_app": app, "celery_task_name": name}
        self.dump_kwargs = {"mode": "json", **(dump_kwargs or {})}
        self.signature = inspect.signature(fun)
        try:  # resolves string annotations (``from __future__ import annotations``)
            self.hints: dict[str, Any] = typing.get_type_hints(fun)
        except (NameError, AttributeError, TypeError):
            self.hints = {}
        returns = self.hints.get("return", self.signature.return_annotation)
        self.return_model = _model_class(returns, self.base_model)
        parameters = self.signature.parameters.values()
        positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
        self.positional = [p.name for p in parameters if p.kind in positional]
        self.keywords = {
            p.name
            for p in parameters
            if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        }

    def model_for(self, name: str) -> type | None:
        parameter = self.signature.parameters[name]
        return _model_class(self.hints.get(name, parameter.annotation), self.base_model)

    def validate(self, model: type, value: Any) -> Any:
        return model.model_validate(  # type: ignore[attr-defined]  # a pydantic model class
            value, strict=self.strict, context=self.context
        )

    # -- the worker's side --------------------------------------------------------------------
    def wrap(self) -> Callable[..., Any]:
        @functools.wraps(self.fun)
        def run(*args: Any, **kwargs: Any) -> Any:
            bound = self.signature.bind(*args, **kwargs)
            for name, value in bound.arguments.items():
                model = self.model_for(name) if value is not None else None
                if model is not None:
                    bound.arguments[name] = self.validate(model, value)
            value = self.fun(*bound.args, **bound.kwargs)
            if inspect.iscoroutine(value):
                return self._dump_awaited(value)
            return self.dump_result(value)

        return run

    async def _dump_awaited(self, coroutine: Any) -> Any:
        return self.dump_result(await coroutine)

    def dump_result(self, value: Any) -> Any:
        """A returned model of the annotated return type becomes plain data."""
        if self.return_model is not None and isinstance(value, self.return_model):
            return value.model_dump(**self.dump_kwargs)  # type: ignore[attr-defined]
        return value

    # -- the caller's side --------------------------------------------------------------------
    def dump_arguments(
        self, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[Sequence[Any], Mapping[str, Any]]:
        """Models the caller passes, as plain data, when the task would rebuild an equal
        model from it; anything else is left for the serializer (as Celery does)."""
        values = (*args, *kwargs.values())
        if not any(isinstance(value, self.base_model) for value in values):
            return args, kwargs
        try:
            self.signature.bind(*([None] if self.bound else []), *args, **kwargs)
        except TypeError:
            return args, kwargs  # refused by the call check with the usual message
        names = self.positional[1:] if self.bound else self.positional
        new_args = [
            self._dump(names[index] if index < len(names) else None, value)
            for index, value in enumerate(args)
        ]
        new_kwargs = {
            key: self._dump(key if key in self.keywords else None, value)
            for key, value in kwargs.items()
        }
        return tuple(new_args), new_kwargs

    def _dump(self, name: str | None, value: Any) -> Any:
        if name is None or not isinstance(value, self.base_model):
            return value
        model = self.model_for(name)
        if model is None:
            return value
        try:
            dumped = value.model_dump(**self.dump_kwargs)  # type: ignore[attr-defined]
            if self.validate(model, dumped) == value:  # equal models, same class
                return dumped
        except Exception:  # a validator that works only on a worker: leave the model
            pass
        return value


__all__ = ["OPTIONS", "PydanticTask"]
