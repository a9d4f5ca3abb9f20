"""``task_annotations``: task attributes set from the configuration, as in Celery.

App core. An annotation is a mapping of task name (or ``'*'``, every task) to attributes,
an object whose ``annotate(task)`` returns such attributes (and ``annotate_any()`` those
for every task), an import path of such an object's class, or a list of these. A task
takes the first answer for its name, then the first for ``'*'``, which wins a conflict;
``Task.annotate()`` applies them.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from celeriac.exceptions import ImproperlyConfigured


class _ByName:
    """A mapping annotation: ``{'proj.add': {...}, '*': {...}}``."""

    def __init__(self, mapping: Mapping[str, Any]) -> None:
        self.mapping = mapping

    def annotate(self, task: Any) -> dict[str, Any] | None:
        found = self.mapping.get(task.name)
        return None if found is None else dict(found)

    def annotate_any(self) -> dict[str, Any] | None:
        found = self.mapping.get("*")
        return None if found is None else dict(found)


def _instantiate(path: str) -> Any:
    module_name, _, name = path.replace(":", ".").rpartition(".")
    try:
        return getattr(importlib.import_module(module_name), name)()
    except (ImportError, AttributeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"task_annotations names {path!r}, which cannot be imported ({exc}): give "
            f"'module.Class' of a class whose instances have annotate(task)"
        ) from exc


def _expand(item: Any) -> Any:
    if isinstance(item, Mapping):
        return _ByName(item)
    if isinstance(item, str):
        return _instantiate(item)
    if hasattr(item, "annotate") or hasattr(item, "annotate_any"):
        return item
    raise ImproperlyConfigured(
        f"task_annotations holds {item!r}: each annotation is a mapping of task name to "
        f"attributes, an object with annotate(task), or the import path of its class"
    )


def _first(annotations: list[Any], method: str, *args: Any) -> dict[str, Any] | None:
    for annotation in annotations:
        answer = getattr(annotation, method, None)
        found = answer(*args) if answer is not None else None
        if found is not None:
            return dict(found)
    return None


def prepare_annotations(setting: Any) -> list[Any]:
    """``setting`` as a list of objects with ``annotate(task)``/``annotate_any()`` (a
    mapping becomes one, an import path is instantiated): Celery's ``app.annotations``."""
    if setting is None:
        return []
    items = setting if isinstance(setting, list | tuple) else [setting]
    return [_expand(item) for item in items]


def resolve_annotations(task: Any, setting: Any) -> list[dict[str, Any]]:
    """The attribute sets that ``setting`` gives ``task``, in the order they apply."""
    annotations = prepare_annotations(setting)
    found = (_first(annotations, "annotate", task), _first(annotations, "annotate_any"))
    return [attributes for attributes in found if attributes]
