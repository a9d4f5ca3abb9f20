"""Fix-ups: what an app changes when it runs inside a framework (Django), as Celery's
fix-ups do: ``app.fixups`` names them (``app.builtin_fixups`` unless ``Celery(fixups=...)``
gives others), and each is called with the app when the app is created.

App core. A fix-up lives at the edges (``celeriac.contrib``) or in the project, above the
app, so it is looked up by name. A built-in one is imported only when its framework
announces itself (Django by ``DJANGO_SETTINGS_MODULE``): an app outside a framework
imports nothing of it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

from celeriac._imports import symbol_by_name

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

DJANGO = "celeriac.contrib.django.fixup:fixup"

#: ``app.builtin_fixups``: the fix-ups every app has unless given others.
BUILTIN = frozenset({DJANGO})

#: A built-in fix-up -> the environment variable by which its framework announces itself.
ANNOUNCED_BY = {DJANGO: "DJANGO_SETTINGS_MODULE"}


class Fixup(Protocol):
    """What the app asks of an installed fix-up."""

    #: The default task base class of the app (``task_cls``), or None to keep Celery's.
    task_cls: type[Any] | None

    def autodiscover_tasks(self) -> list[str]:
        """The packages ``app.autodiscover_tasks()`` searches when given none."""


def install(app: Celeriac, names: Iterable[Any]) -> list[Any]:
    """Call each fix-up (a callable or its ``'module:name'`` path) with the app, built-in
    ones first and each in a fixed order; what they return that is not None is kept. A
    built-in fix-up whose framework has not announced itself is skipped unimported."""
    ordered = sorted(n for n in names if n in BUILTIN) + [n for n in names if n not in BUILTIN]
    installed = []
    for name in ordered:
        variable = ANNOUNCED_BY.get(name)
        if variable is not None and not os.environ.get(variable):
            continue
        found = symbol_by_name(name, "fix-up")(app)  # above the app: by name
        if found is not None:
            installed.append(found)
    return installed


def default_task_cls(fixups: list[Any]) -> type[Any] | None:
    """The task base class the first fix-up that has one asks for."""
    classes = (getattr(fixup, "task_cls", None) for fixup in fixups)
    return next((cls for cls in classes if cls is not None), None)


def packages(fixups: list[Any]) -> list[str]:
    """Where ``autodiscover_tasks()`` without packages looks: each fix-up's packages (a
    fix-up of one's own may have none)."""
    found: list[str] = []
    for fixup in fixups:
        discover = getattr(fixup, "autodiscover_tasks", None)
        if callable(discover):
            found.extend(discover())
    return found


__all__ = ["ANNOUNCED_BY", "BUILTIN", "Fixup", "default_task_cls", "install", "packages"]
