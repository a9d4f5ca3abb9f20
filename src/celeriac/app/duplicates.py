"""``DuplicateTaskNameWarning``: two different callables under one task name.

A name generated from a module that is imported under two paths, or copy-pasted
``name=``, would otherwise make one of the two functions silently unreachable. As in
Celery 5.7 the app warns once per name: for ``@app.task`` the first function keeps the
name; for ``app.register_task`` the new task replaces the old one.
"""

from __future__ import annotations

import warnings
import weakref
from typing import Any

from celeriac.exceptions import DuplicateTaskNameWarning

_warned: weakref.WeakKeyDictionary[Any, set[str]] = weakref.WeakKeyDictionary()

KEPT = "The new callable was not registered; calls under this name reach the one registered first."
REPLACED = "The new callable replaced the existing one; calls under this name now reach it."


def is_same_function(task: Any, fun: Any) -> bool:
    """Whether ``task`` was made from ``fun`` (its ``__wrapped__``, bound with bind=True):
    decorating the same function again is no duplicate."""
    wrapped = getattr(task, "__wrapped__", fun)
    return getattr(wrapped, "__func__", wrapped) is fun


def _qualname(thing: Any) -> str:
    target = getattr(thing, "__wrapped__", None) or thing
    kind = target if isinstance(target, type) or callable(target) else type(target)
    module = getattr(kind, "__module__", "?")
    return f"{module}.{getattr(kind, '__qualname__', type(kind).__qualname__)}"


def warn_duplicate(app: Any, name: str, existing: Any, new: Any, consequence: str) -> None:
    """Warn (once per app and name) that ``name`` now has two different callables."""
    seen = _warned.setdefault(app, set())
    if name in seen:
        return
    seen.add(name)
    warnings.warn(
        DuplicateTaskNameWarning(
            f"task name {name!r} is already registered to a different callable.\n"
            f"Existing: {_qualname(existing)}\nNew:      {_qualname(new)}\n{consequence} "
            f"Give each task a unique name (name=...)."
        ),
        stacklevel=4,
    )
