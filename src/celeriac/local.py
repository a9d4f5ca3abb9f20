"""Lazy objects, as ``celery.local`` offers them: ``Proxy`` (forwards everything to what a
function returns, at each use), ``PromiseProxy`` (evaluated once, then kept),
``maybe_evaluate`` and ``try_import``.

A leaf: imports nothing of celeriac (``current_app`` and ``current_task`` are Proxies).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from importlib import import_module
from types import ModuleType
from typing import Any, cast

__all__ = ["PromiseProxy", "Proxy", "maybe_evaluate", "try_import"]


def try_import(module: str, default: Any = None) -> ModuleType | Any:
    """The module named ``module``, or ``default`` when it cannot be imported."""
    try:
        return import_module(module)
    except ImportError:
        return default


class _TargetAttr(str):
    """``__doc__``/``__module__`` of a Proxy: the target's on an instance (or the one given
    to the Proxy); on the class, this string itself (the class's own value: a str, as
    ``help()`` and ``inspect`` expect)."""

    attr: str

    def __new__(cls, attr: str, class_value: str | None) -> _TargetAttr:
        self = super().__new__(cls, class_value or "")
        self.attr = attr
        return self

    def __get__(self, proxy: Proxy | None, cls: type | None = None) -> Any:
        if proxy is None:
            return str(self)
        given = object.__getattribute__(proxy, "_Proxy__given")
        if self.attr in given:
            return given[self.attr]
        return getattr(proxy._get_current_object(), self.attr)


class Proxy:
    """Stands for ``fun(*args, **kwargs)``, called again at each use: attributes,
    operators, comparisons, calls, iteration, ``len``, ``bool``, ``repr``, ``isinstance``
    all reach that object. ``_get_current_object()`` returns it."""

    __slots__ = ("_Proxy__args", "_Proxy__given", "_Proxy__kwargs", "_Proxy__local")

    def __init__(
        self,
        local: Callable[..., Any],
        args: tuple[Any, ...] | None = None,
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        __doc__: str | None = None,
    ) -> None:
        if not callable(local):
            raise TypeError(f"Proxy() takes a callable returning the object, not {local!r}.")
        given = {"__name__": name, "__qualname__": name, "__doc__": __doc__}
        object.__setattr__(self, "_Proxy__local", local)
        object.__setattr__(self, "_Proxy__args", args or ())
        object.__setattr__(self, "_Proxy__kwargs", kwargs or {})
        object.__setattr__(self, "_Proxy__given", {k: v for k, v in given.items() if v})

    # The target's docstring and module on an instance, the Proxy class's own on the class.
    __doc__ = _TargetAttr("__doc__", __doc__)
    __module__ = _TargetAttr("__module__", __name__)

    def _get_current_object(self) -> Any:
        local = object.__getattribute__(self, "_Proxy__local")
        args = object.__getattribute__(self, "_Proxy__args")
        return local(*args, **object.__getattribute__(self, "_Proxy__kwargs"))

    @property  # type: ignore[misc]  # isinstance(proxy, Target) is True, as for the object
    def __class__(self) -> type:
        return type(self._get_current_object())

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]  # the target's
        return cast(dict[str, Any], vars(self._get_current_object()))

    def __getattr__(self, name: str) -> Any:
        given = object.__getattribute__(self, "_Proxy__given")
        if name in given:
            return given[name]
        return getattr(self._get_current_object(), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._get_current_object(), name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._get_current_object(), name)

    def __dir__(self) -> list[str]:
        return dir(self._get_current_object())

    def __repr__(self) -> str:
        return repr(self._get_current_object())

    def __str__(self) -> str:
        return str(self._get_current_object())

    def __bool__(self) -> bool:
        return bool(self._get_current_object())

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get_current_object()(*args, **kwargs)

    # -- containers -------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._get_current_object())

    def __iter__(self) -> Iterator[Any]:
        return iter(self._get_current_object())

    def __contains__(self, item: object) -> bool:
        return item in self._get_current_object()

    def __getitem__(self, key: Any) -> Any:
        return self._get_current_object()[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        self._get_current_object()[key] = value

    def __delitem__(self, key: Any) -> None:
        del self._get_current_object()[key]

    # -- comparisons ------------------------------------------------------------------------
    def __eq__(self, other: object) -> Any:
        return self._get_current_object() == other

    def __ne__(self, other: object) -> Any:
        return self._get_current_object() != other

    def __lt__(self, other: Any) -> Any:
        return self._get_current_object() < other

    def __le__(self, other: Any) -> Any:
        return self._get_current_object() <= other

    def __gt__(self, other: Any) -> Any:
        return self._get_current_object() > other

    def __ge__(self, other: Any) -> Any:
        return self._get_current_object() >= other

    def __hash__(self) -> int:
        return hash(self._get_current_object())

    # -- arithmetic and conversions ---------------------------------------------------------
    def __add__(self, other: Any) -> Any:
        return self._get_current_object() + other

    def __sub__(self, other: Any) -> Any:
        return self._get_current_object() - other

    def __mul__(self, other: Any) -> Any:
        return self._get_current_object() * other

    def __truediv__(self, other: Any) -> Any:
        return self._get_current_object() / other

    def __floordiv__(self, other: Any) -> Any:
        return self._get_current_object() // other

    def __mod__(self, other: Any) -> Any:
        return self._get_current_object() % other

    def __divmod__(self, other: Any) -> Any:
        return divmod(self._get_current_object(), other)

    def __pow__(self, other: Any) -> Any:
        return self._get_current_object() ** other

    def __lshift__(self, other: Any) -> Any:
        return self._get_current_object() << other

    def __rshift__(self, other: Any) -> Any:
        return self._get_current_object() >> other

    def __and__(self, other: Any) -> Any:
        return self._get_current_object() & other

    def __xor__(self, other: Any) -> Any:
        return self._get_current_object() ^ other

    def __or__(self, other: Any) -> Any:
        return self._get_current_object() | other

    def __neg__(self) -> Any:
        return -self._get_current_object()

    def __pos__(self) -> Any:
        return +self._get_current_object()

    def __abs__(self) -> Any:
        return abs(self._get_current_object())

    def __invert__(self) -> Any:
        return ~self._get_current_object()

    def __int__(self) -> int:
        return int(self._get_current_object())

    def __float__(self) -> float:
        return float(self._get_current_object())

    def __complex__(self) -> complex:
        return complex(self._get_current_object())

    def __index__(self) -> int:
        return int(self._get_current_object().__index__())

    # -- context manager and pickling -------------------------------------------------------
    def __enter__(self) -> Any:
        return self._get_current_object().__enter__()

    def __exit__(self, *exc_info: Any) -> Any:
        return self._get_current_object().__exit__(*exc_info)

    def __reduce_ex__(self, protocol: Any) -> str | tuple[Any, ...]:
        # Pickling a proxy pickles the object it stands for.
        return cast(str | tuple[Any, ...], self._get_current_object().__reduce_ex__(protocol))

    def __reduce__(self) -> str | tuple[Any, ...]:
        return cast(str | tuple[Any, ...], self._get_current_object().__reduce__())


class PromiseProxy(Proxy):
    """A Proxy whose function runs once, at first use (or ``__maybe_evaluate__()``); the
    object it returned is kept and used from then on."""

    __slots__ = ("_PromiseProxy__thing", "__pending__", "__weakref__")

    __doc__ = _TargetAttr("__doc__", __doc__)  # as Proxy's

    def _get_current_object(self) -> Any:
        try:
            return object.__getattribute__(self, "_PromiseProxy__thing")
        except AttributeError:
            return self.__evaluate__()

    def __evaluated__(self) -> bool:
        """Whether the function already ran."""
        try:
            object.__getattribute__(self, "_PromiseProxy__thing")
        except AttributeError:
            return False
        return True

    def __maybe_evaluate__(self) -> Any:
        """The object, evaluating it now if that has not happened yet."""
        return self._get_current_object()

    def __then__(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call ``fun(*args, **kwargs)`` once evaluated (at once if it is)."""
        if self.__evaluated__():
            return fun(*args, **kwargs)
        try:
            pending = object.__getattribute__(self, "__pending__")
        except AttributeError:
            pending = deque()
            object.__setattr__(self, "__pending__", pending)
        pending.append((fun, args, kwargs))
        return None

    def __evaluate__(self) -> Any:
        thing = Proxy._get_current_object(self)
        object.__setattr__(self, "_PromiseProxy__thing", thing)
        # Drop the function and its arguments: what they made is all that is needed now.
        for attr in ("_Proxy__local", "_Proxy__args", "_Proxy__kwargs"):
            object.__delattr__(self, attr)
        try:
            pending = object.__getattribute__(self, "__pending__")
        except AttributeError:
            return thing
        object.__delattr__(self, "__pending__")
        while pending:
            fun, args, kwargs = pending.popleft()
            fun(*args, **kwargs)
        return thing


def maybe_evaluate(obj: Any) -> Any:
    """``obj`` evaluated if it is a PromiseProxy (or anything with
    ``__maybe_evaluate__``), else ``obj`` itself."""
    try:
        evaluate = obj.__maybe_evaluate__
    except AttributeError:
        return obj
    return evaluate()
