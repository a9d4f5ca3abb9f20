"""``symbol_by_name``: the object a ``'package.module:Name'`` path names.

Below pure logic: imports only ``exceptions``. Celery names classes by path in a few places a
project fills in (the app's part classes, a bootstep's ``requires``).
"""

from __future__ import annotations

import importlib
from typing import Any

from celeriac.exceptions import ImproperlyConfigured


def symbol_by_name(value: Any, what: str = "class") -> Any:
    """``value`` itself, or the object its path names: ``'pkg.mod:Name'``,
    ``'pkg.mod.Name'`` or ``'pkg.mod:Outer.Inner'``. ``what`` names it in errors."""
    if not isinstance(value, str):
        return value
    module_name, colon, attribute = value.partition(":")
    if not colon:
        module_name, _, attribute = value.rpartition(".")
    if not module_name or not attribute:
        raise ImproperlyConfigured(
            f"{what} {value!r} is not an import path: write 'package.module:Class'"
        )
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError) as exc:
        raise ImproperlyConfigured(f"{what} {value!r} cannot be imported: {exc}") from exc
    return found


__all__ = ["symbol_by_name"]
