"""``current_app`` and ``current_task``: objects that forward to what is current when used."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from celeriac._context import get_current_app, get_current_request


class Proxy:
    """Forwards attribute access and calls to ``getter()``'s result at each use."""

    __slots__ = ("_getter",)

    def __init__(self, getter: Callable[[], Any]) -> None:
        object.__setattr__(self, "_getter", getter)

    def _get_current_object(self) -> Any:
        return self._getter()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._getter(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._getter()(*args, **kwargs)

    def __bool__(self) -> bool:
        return self._getter() is not None

    def __eq__(self, other: object) -> bool:
        return bool(self._getter() == other)

    def __hash__(self) -> int:
        return hash(self._getter())

    def __repr__(self) -> str:
        return repr(self._getter())


def _current_task() -> Any:
    request = get_current_request()
    if request is None or request.task is None:
        return None
    return get_current_app().tasks.get(request.task)


current_app: Any = Proxy(get_current_app)
current_task: Any = Proxy(_current_task)
