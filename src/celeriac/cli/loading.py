"""Finding the app that ``-A`` names, by Celery's rules.

Edge layer (cli). ``proj:app`` and ``proj.mod:attr.sub`` name the object exactly;
``proj.app`` is a module or a module's attribute. In a module we take the attribute
``app``, ``celery`` or ``celeriac``, then (for a package) the submodule ``celeriac`` or
``celery``, then the only ``Celeriac`` instance. Failures say everything that was tried.
"""

from __future__ import annotations

import importlib
import traceback
from types import ModuleType
from typing import Any

from celeriac.app.base import Celeriac

ATTRIBUTES = ("app", "celery", "celeriac")
SUBMODULES = ("celeriac", "celery")


class AppLoadError(Exception):
    """``-A`` does not lead to an app; the message says what was tried."""


def load_app(spec: str) -> Celeriac:
    """The app named by ``spec`` (the value of ``-A``)."""
    spec = spec.strip()
    module_name, colon, attribute = spec.partition(":")
    if not module_name or (colon and not attribute):
        raise AppLoadError(f"-A {spec!r}: expected 'module', 'module.attr' or 'module:attr'")
    if colon:
        module = _import(module_name)
        if module is None:
            raise AppLoadError(f"cannot load app {spec!r}: no module named {module_name!r}")
        return _exact(module, attribute, spec)
    module = _import(spec)
    if module is not None:
        return _search(module, spec, packages=True)
    parent_name, dot, attribute = spec.rpartition(".")
    parent = _import(parent_name) if dot else None
    if parent is None:
        raise AppLoadError(
            f"cannot load app {spec!r}: no module named {spec!r}"
            + (f" nor {parent_name!r}" if dot else "")
            + " (the current directory is on the import path; use --workdir to change it)"
        )
    if not hasattr(parent, attribute):
        raise AppLoadError(
            f"cannot load app {spec!r}: no module named {spec!r}, "
            f"and module {parent_name!r} has no attribute {attribute!r}"
        )
    return _exact(parent, attribute, spec)


def _import(name: str) -> ModuleType | None:
    """The module, or None if it (or a package above it) does not exist.

    Any other failure, including a missing module imported *by* the user's code, is an
    error in that code: it is reported with its traceback, not mistaken for "not found".
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        if name == missing or name.startswith(missing + "."):
            return None
        raise AppLoadError(_import_failure(name)) from exc
    except Exception as exc:
        raise AppLoadError(_import_failure(name)) from exc


def _import_failure(name: str) -> str:
    return f"importing {name!r} failed:\n{traceback.format_exc().rstrip()}"


def _exact(module: ModuleType, path: str, spec: str) -> Celeriac:
    """``module:path`` (``path`` may be dotted): the object itself, searched if a module."""
    found: Any = module
    for part in path.split("."):
        if not hasattr(found, part):
            raise AppLoadError(
                f"cannot load app {spec!r}: {getattr(found, '__name__', found)!r} "
                f"has no attribute {part!r}"
            )
        found = getattr(found, part)
    if isinstance(found, ModuleType):
        return _search(found, spec, packages=True)
    if not isinstance(found, Celeriac):
        raise AppLoadError(
            f"cannot load app {spec!r}: it is a {type(found).__name__}, not a Celeriac app"
        )
    return found


def _search(module: ModuleType, spec: str, packages: bool) -> Celeriac:
    tried: list[str] = []
    app = _find_in(module, tried, packages)
    if app is None:
        raise AppLoadError(
            f"cannot load app {spec!r}: no Celeriac app found; tried " + ", ".join(tried)
        )
    return app


def _find_in(module: ModuleType, tried: list[str], packages: bool) -> Celeriac | None:
    name = module.__name__
    for attribute in ATTRIBUTES:
        value = getattr(module, attribute, None)
        if isinstance(value, Celeriac):
            return value
        tried.append(f"{name}.{attribute}")
    if packages and hasattr(module, "__path__"):
        for sub in SUBMODULES:
            submodule = _import(f"{name}.{sub}")
            if submodule is None:
                tried.append(f"module {name}.{sub} (absent)")
                continue
            found = _find_in(submodule, tried, packages=False)
            if found is not None:
                return found
    return _only_instance(module, tried)


def _only_instance(module: ModuleType, tried: list[str]) -> Celeriac | None:
    apps: dict[int, tuple[str, Celeriac]] = {}
    for attribute, value in vars(module).items():
        if isinstance(value, Celeriac):
            apps.setdefault(id(value), (attribute, value))
    if len(apps) > 1:
        names = ", ".join(sorted(f"{module.__name__}:{a}" for a, _ in apps.values()))
        raise AppLoadError(f"{module.__name__} defines several apps ({names}): name one with -A")
    tried.append(f"the only Celeriac instance in {module.__name__}")
    return next(iter(apps.values()))[1] if apps else None


__all__ = ["ATTRIBUTES", "SUBMODULES", "AppLoadError", "load_app"]
