"""Fix-ups: what an app changes when it runs inside a framework (Django), as Celery's
built-in fix-ups do.

App core. A fix-up lives at the edges (``celeriac.contrib``), above the app, so it is
looked up by name, and only when its framework announces itself (Django by
``DJANGO_SETTINGS_MODULE``): an app outside a framework imports nothing of it.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

#: Environment variable that announces a framework -> the module with its ``fixup(app)``.
BUILTIN = {"DJANGO_SETTINGS_MODULE": "celeriac.contrib.django.fixup"}


class Fixup(Protocol):
    """What the app asks of an installed fix-up."""

    #: The default task base class of the app (``task_cls``), or None to keep Celery's.
    task_cls: type[Any] | None

    def autodiscover_tasks(self) -> list[str]:
        """The packages ``app.autodiscover_tasks()`` searches when given none."""


def install(app: Celeriac) -> list[Fixup]:
    """Install the fix-up of each framework this process announces, in a fixed order."""
    installed = []
    for variable, module in BUILTIN.items():
        if os.environ.get(variable):
            found = importlib.import_module(module).fixup(app)  # above the app: by name
            if found is not None:
                installed.append(found)
    return installed


def default_task_cls(fixups: list[Fixup]) -> type[Any] | None:
    """The task base class the first fix-up that has one asks for."""
    return next((fixup.task_cls for fixup in fixups if fixup.task_cls is not None), None)


def packages(fixups: list[Fixup]) -> list[str]:
    """Where ``autodiscover_tasks()`` without packages looks: each fix-up's packages."""
    return [package for fixup in fixups for package in fixup.autodiscover_tasks()]


__all__ = ["BUILTIN", "Fixup", "default_task_cls", "install", "packages"]
