"""``app.loader``: the part of Celery's loader a project calls, to import task modules.

``import_default_modules()`` sends ``import_modules`` and imports the ``imports`` and
``include`` modules (a test setup's way of registering every task), ``import_task_module``
and ``autodiscover_tasks`` import more, and ``task_modules`` names what was imported.
Reading settings stays with the app (``config_from_object``); a loader class of one's own
(Celery's loader hooks, ``--loader``) is not offered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from celeriac import signals

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


class AppLoader:
    """Imports the app's task modules; ``app.loader``."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self.task_modules: set[str] = set()  # the names imported through this loader

    def now(self, utc: bool = True) -> dt.datetime:
        """The current time: in UTC (aware) by default, else local (naive), as Celery's."""
        return dt.datetime.now(dt.timezone.utc) if utc else dt.datetime.now()

    @property
    def default_modules(self) -> tuple[str, ...]:
        """The modules ``import_default_modules`` imports: ``imports``, then ``include``."""
        conf = self.app.conf
        return (*_names(conf.imports), *_names(conf.include))

    def import_module(self, module: str, package: str | None = None) -> ModuleType:
        return importlib.import_module(module, package=package)

    def import_from_cwd(
        self, module: str, imp: Callable[..., ModuleType] | None = None, package: str | None = None
    ) -> ModuleType:
        """Import ``module`` with the current directory first on ``sys.path``."""
        with _cwd_in_path():
            return (imp or importlib.import_module)(module, package=package)

    def import_task_module(self, module: str) -> ModuleType:
        """Import a module of tasks (from the current directory first) and remember it."""
        self.task_modules.add(module)
        return self.import_from_cwd(module)

    def import_default_modules(self) -> list[ModuleType]:
        """Send ``import_modules`` (a receiver's error is raised, not hidden), then import
        ``default_modules``; the modules, in order."""
        for _receiver, response in signals.import_modules.send(sender=self.app):
            if isinstance(response, Exception):
                raise response
        return [self.import_task_module(module) for module in self.default_modules]

    def autodiscover_tasks(
        self, packages: Sequence[str] | None, related_name: str = "tasks"
    ) -> None:
        """Import ``<package>.<related_name>`` for each package now; a package without such
        a module is passed over, as with ``app.autodiscover_tasks``."""
        packages = list(packages or ())
        self.app.autodiscover_tasks(packages, related_name, force=True)
        found = (f"{package}.{related_name}" for package in packages)
        self.task_modules.update(module for module in found if module in sys.modules)


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


@contextlib.contextmanager
def _cwd_in_path() -> Iterator[None]:
    cwd = os.getcwd()
    if cwd in sys.path:
        yield
        return
    sys.path.insert(0, cwd)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(cwd)
