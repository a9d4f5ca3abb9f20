"""Built-in tasks every app has: ``celeriac.map`` and ``celeriac.starmap``, which run
``task.map(items)`` and ``task.starmap(items)`` as one task on a worker, and
``celeriac.accumulate``, which lets a group replace a task (``Task.replace``).

Imports nothing of celeriac at run time: the app registers these with itself when it is
created.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


def register(app: Celeriac) -> None:
    @app.task(name="celeriac.map")
    def xmap(task: dict[str, Any], it: Iterable[Any]) -> list[Any]:
        function = app.signature(task).type
        return [function(item) for item in it]

    @app.task(name="celeriac.starmap")
    def xstarmap(task: dict[str, Any], it: Iterable[Any]) -> list[Any]:
        function = app.signature(task).type
        return [function(*item) for item in it]

    @app.task(name="celeriac.accumulate")
    def accumulate(*args: Any, index: int | None = None) -> Any:
        """The argument at ``index`` (a chord's list of results), or all of them."""
        return args if index is None else args[index]
