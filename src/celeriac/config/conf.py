"""``app.conf``: a mapping of Celery's lowercase setting names, with defaults and checks.

Imports ``config.settings`` and leaves. An unknown or misspelt name warns with the
closest declared name; a value of the wrong type fails with the expected type; a setting
nothing reads yet warns when given a value of its own. ``broker_url`` and
``result_backend`` are read from Celery's environment variables first (``environment``).
``add_defaults`` adds defaults under the values set (an extension's own settings too).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import warnings
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from celeriac.config.environment import VARIABLES, from_environment
from celeriac.config.hints import UnknownSettingWarning as UnknownSettingWarning  # its old home
from celeriac.config.hints import closest, did_you_mean, warn_unknown
from celeriac.config.settings import SETTINGS, Setting
from celeriac.exceptions import CeleryWarning, ImproperlyConfigured


class NotInEffectWarning(CeleryWarning):
    """A declared setting given a value of its own, though nothing in celeriac reads it yet."""


def _coerce(setting: Setting, value: Any) -> Any:
    """Accept the declared types; read numbers and booleans from strings (env vars); keep
    a list of broker URLs as kombu's failover list (``'amqp://a//;amqp://b//'``)."""
    if setting.accepts(value):
        return value
    urls = setting.url_list and isinstance(value, (list, tuple))
    if urls and value and all(isinstance(url, str) for url in value):
        return ";".join(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if bool in setting.types and text in {"true", "1", "yes", "on", "false", "0", "no", "off"}:
            return text in {"true", "1", "yes", "on"}
        for kind in (int, float):
            if kind in setting.types:
                try:
                    return kind(text)
                except ValueError:
                    pass
    expected = " or ".join(t.__name__ for t in setting.types)
    raise ImproperlyConfigured(
        f"setting {setting.name!r} must be {expected} (or None), "
        f"not {type(value).__name__}: {value!r}"
    )


class Settings(MutableMapping[str, Any]):
    """The app's configuration. ``conf.name``, ``conf['name']``, ``update``, namespaces."""

    def __init__(self, initial: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "version", 0)  # bumped on every write: caches compare it
        object.__setattr__(self, "_overridden", set())  # set above the environment
        object.__setattr__(self, "_warned", set())  # not-in-effect names warned about
        object.__setattr__(self, "_defaults", {})  # add_defaults: under the values set
        object.__setattr__(self, "_pending", [])  # add_defaults(callable): read on first use
        object.__setattr__(self, "_cached", set())  # built-in defaults kept in _values once read
        if initial:
            self.update(initial)

    # -- mapping ----------------------------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        if self._pending:
            self._load_pending()
        if key in VARIABLES and key not in self._overridden:
            found = from_environment(key)  # Celery's order: the variable, then the setting
            if found is not None:
                return found
        values: dict[str, Any] = self._values
        if key in values:
            return values[key]
        if key in self._defaults:
            return self._defaults[key]
        setting = SETTINGS.get(key)
        if setting is None:
            raise KeyError(key)
        default = copy.copy(setting.default)  # never hand out the shared default
        values[key] = default
        self._cached.add(key)
        return default

    def __setitem__(self, key: str, value: Any) -> None:
        setting = SETTINGS.get(key)
        if setting is None:
            if key not in self._defaults:  # an extension's setting, added by add_defaults
                self._warn_unknown(key)
        else:
            value = _coerce(setting, value)
            if setting.not_in_effect and value != setting.default:
                self._warn_not_in_effect(setting)
        self._values[key] = value
        self._cached.discard(key)
        object.__setattr__(self, "version", self.version + 1)

    def override(self, key: str, value: Any) -> None:
        """Set ``key`` above its environment variable too: the command line's ``-b`` and
        ``--result-backend`` (Celery's ``-b`` wins by rewriting the variable)."""
        self[key] = value
        self._overridden.add(key)

    def __delitem__(self, key: str) -> None:
        del self._values[key]
        self._cached.discard(key)
        self._overridden.discard(key)
        object.__setattr__(self, "version", self.version + 1)

    def __iter__(self) -> Iterator[str]:
        self._load_pending()
        return iter({**dict.fromkeys(SETTINGS), **self._defaults, **self._values})

    def __len__(self) -> int:
        self._load_pending()
        return len(set(SETTINGS) | set(self._defaults) | set(self._values))

    def __contains__(self, key: object) -> bool:
        self._load_pending()
        return key in self._values or key in self._defaults or key in SETTINGS

    # -- defaults ---------------------------------------------------------------------------
    def add_defaults(self, defaults: Any) -> None:
        """Celery's ``add_defaults``: values used where none is set, under every value set
        (in any order) and over earlier defaults. An extension declares its own settings
        this way: they can then be set without a warning. ``defaults`` is a mapping or an
        object (its public attributes); a callable returning one is read on the
        configuration's first use."""
        if isinstance(defaults, str):
            raise TypeError(
                "add_defaults() takes a mapping of setting names to values, an object, or a "
                "callable returning one; to load a module by name, use config_from_object()"
            )
        if callable(defaults) and not inspect.isclass(defaults):
            self._pending.append(defaults)
            object.__setattr__(self, "version", self.version + 1)  # its values come next
            return
        for key, value in _public_values(defaults):
            setting = SETTINGS.get(key)
            self._defaults[key] = value if setting is None else _coerce(setting, value)
            if key in self._cached:  # a built-in default read before: the new one wins
                self._cached.discard(key)
                del self._values[key]
        object.__setattr__(self, "version", self.version + 1)

    def _load_pending(self) -> None:
        while self._pending:
            self.add_defaults(self._pending.pop(0)())

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            extra = did_you_mean(name.lower(), SETTINGS)
            raise AttributeError(f"no setting named {name!r}{extra}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __repr__(self) -> str:
        return f"<Settings: {len(self._values)} set>"

    def _warn_unknown(self, key: str) -> None:
        ignored = ": celeriac ignores it (see docs/configuration.md for the settings it reads)"
        warn_unknown(
            f"unknown setting {key!r}", key.lower(), SETTINGS, otherwise=ignored, stacklevel=4
        )

    def _warn_not_in_effect(self, setting: Setting) -> None:
        if setting.name in self._warned:
            return  # once per app: reloading a configuration says nothing new
        self._warned.add(setting.name)
        warnings.warn(
            f"setting {setting.name!r} is not in effect in celeriac yet: "
            f"{setting.not_in_effect}; the value is kept, but nothing reads it",
            NotInEffectWarning,
            stacklevel=4,
        )

    def is_set(self, key: str) -> bool:
        """Whether ``key`` was given a value (by the user, an extension's defaults or the
        environment) rather than left at celeriac's built-in default."""
        if self._pending:
            self._load_pending()
        if key in VARIABLES and key not in self._overridden and from_environment(key) is not None:
            return True
        return (key in self._values and key not in self._cached) or key in self._defaults

    # -- bulk -------------------------------------------------------------------------------
    def changes(self) -> dict[str, Any]:
        """Settings given a value by the user (defaults read so far included)."""
        return dict(self._values)

    def config_from_object(self, obj: Any, namespace: str | None = None) -> None:
        """Load settings from an object, a module, or ``'pkg.module[:attr]'``.

        With ``namespace='CELERY'`` only ``CELERY_``-prefixed names are read, the prefix
        dropped and the rest lower-cased (``CELERY_BROKER_URL`` -> ``broker_url``), as in
        Django projects. A project's own constant under the prefix (``CELERY_MY_FLAG``) is
        kept without a warning; one that looks like a setting (``CELERY_BROKER_UR``,
        ``CELERY_TASK_X``) still warns with the closest name.
        """
        if isinstance(obj, str):
            obj = _import_object(obj)
        prefix = namespace.upper().rstrip("_") + "_" if namespace else None
        for key, value in _public_values(obj, prefix):
            if prefix is not None:
                if not key.startswith(prefix):
                    continue
                key = key[len(prefix) :].lower()
            elif key != key.lower():
                self._warn_old_style(key)
                continue
            if key not in SETTINGS and _is_code(value):
                continue  # imported modules, helper functions and classes are not settings
            if prefix is not None and _project_constant(key):
                self._keep_quietly(key, value)
                continue
            self[key] = value

    def _keep_quietly(self, key: str, value: Any) -> None:
        """A project's own ``CELERY_`` constant (Django settings share the prefix): kept
        and readable, as in Celery, but not warned about."""
        self._values[key] = value
        self._cached.discard(key)
        object.__setattr__(self, "version", self.version + 1)

    def _warn_old_style(self, key: str) -> None:
        """Celery 3's uppercase names (``BROKER_URL``) are not read: say which name is."""
        lowered = key.lower()
        for candidate in (
            lowered,
            lowered.removeprefix("celery_"),
            "task_" + lowered.removeprefix("celery_"),
        ):
            if candidate in SETTINGS:
                warnings.warn(
                    f"old-style setting {key!r} is not read: use {candidate!r} (or "
                    f"config_from_object(..., namespace='CELERY') for CELERY_ names)",
                    UnknownSettingWarning,
                    stacklevel=3,
                )
                return


class _SettingAttribute:
    """``conf.name`` for a known setting, read and written as ``conf['name']``. Without
    it the read falls through a failed attribute lookup to ``__getattr__`` (about 1 us,
    where this is a third of that), and a worker reads a few settings per task."""

    __slots__ = ("key",)

    def __init__(self, key: str) -> None:
        self.key = key

    def __get__(self, conf: Settings | None, owner: type | None = None) -> Any:
        return self if conf is None else conf[self.key]

    def __set__(self, conf: Settings, value: Any) -> None:
        conf[self.key] = value


for _key in SETTINGS:
    if not hasattr(Settings, _key):  # (a mapping method's name stays the method)
        setattr(Settings, _key, _SettingAttribute(_key))


def _import_object(path: str) -> Any:
    module_name, _, attr = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"cannot import configuration module {module_name!r}: {exc}"
        ) from exc
    return getattr(module, attr) if attr else module


# Where Celery's setting names start (its groups, and its few names outside a group).
_CELERY_GROUPS = (
    "arangodb_", "azureblockblob_", "beat_", "broker_", "cache_", "cassandra_", "control_",
    "cosmosdbsql_", "couchbase_", "database_", "elasticsearch_", "event_", "gcs_",
    "mongodb_", "redis_", "result_", "s3_", "security_", "task_", "worker_", "accept_",
    "enable_utc", "imports", "include", "timezone",
)  # fmt: skip
_NAMESPACED_CUTOFF = 0.8  # stricter than a plain name's: the prefix also holds other names


def _project_constant(key: str) -> bool:
    """A name under the namespace that is clearly not meant as a setting: it is in no
    group of Celery's and is not a near-miss of a declared name (``broker_ur``)."""
    if key in SETTINGS or key.startswith(_CELERY_GROUPS):
        return False
    return closest(key, SETTINGS, cutoff=_NAMESPACED_CUTOFF) is None


def _is_code(value: Any) -> bool:
    return inspect.ismodule(value) or inspect.isclass(value) or inspect.isroutine(value)


def _public_values(obj: Any, prefix: str | None = None) -> Iterator[tuple[str, Any]]:
    """The public names (only those under ``prefix`` if given) and their values. Names are
    chosen before values are read: Django 4.2's settings warn when a deprecated one is."""
    mapping = isinstance(obj, Mapping)
    for key in list(obj) if mapping else dir(obj):
        if not key.startswith("_") and (prefix is None or key.startswith(prefix)):
            yield key, obj[key] if mapping else getattr(obj, key)
