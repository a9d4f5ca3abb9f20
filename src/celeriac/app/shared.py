"""``@shared_task``: a task defined without an app, registered with every app.

Reusable apps (Django apps, libraries) define tasks this way. Each app created later
registers the shared tasks too; the returned proxy resolves to the current app's task.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from celeriac._context import get_current_app

#: Called with each app (existing and future) to register the shared tasks with it.
_builders: list[Callable[[Any], Any]] = []
_apps: weakref.WeakSet[Any] = weakref.WeakSet()


def register_app(app: Any) -> None:
    """Called by every new app: it receives the shared tasks defined so far."""
    _apps.add(app)
    for build in list(_builders):
        build(app)


class SharedTaskProxy:
    """Stands for ``current_app.tasks[name]``; forwards everything to it."""

    def __init__(self, name_of: Callable[[Any], str]) -> None:
        object.__setattr__(self, "_name_of", name_of)

    def _resolve(self) -> Any:
        app = get_current_app()
        return app.tasks[self._name_of(app)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._resolve(), name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<shared task proxy: {self._name_of(get_current_app())}>"


def shared_task(*args: Any, **options: Any) -> Any:
    """``@shared_task`` or ``@shared_task(bind=True, ...)``: like ``@app.task`` for every app."""

    def decorate(fun: Callable[..., Any]) -> Any:
        names: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

        def build(app: Any) -> Any:
            task = app.task(**options)(fun)
            names[app] = task.name
            return task

        _builders.append(build)
        for app in list(_apps):
            build(app)
        return SharedTaskProxy(lambda app: names.get(app) or build(app).name)

    if len(args) == 1 and callable(args[0]) and not options:
        return decorate(args[0])
    return decorate
