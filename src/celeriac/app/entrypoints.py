"""Running the command line from Python: ``app.start(argv)``, ``app.worker_main(argv)``,
and ``app.config_from_cmdline(argv)``'s ``key=value`` parsing.

App core. The command line (``celeriac.cli``) sits above the app, so it is looked up by
name when called (as ``python -m celeriac`` does), never imported here: the app stays
usable where the command line's dependencies are not wanted.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from celeriac.config.hints import did_you_mean
from celeriac.config.settings import SETTINGS

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

_CAST = re.compile(r"^\((\w+)\)")
_TRUE = {"1", "true", "yes", "on", "y"}
_FALSE = {"0", "false", "no", "off", "n", ""}


def start(app: Celeriac, argv: Sequence[str] | None = None) -> int:
    """Run ``celeriac`` with ``argv`` (default: this program's arguments, ``sys.argv[1:]``)
    for ``app``; the exit status. ``-A`` may still name another app."""
    cli: Any = importlib.import_module("celeriac.cli")  # above the app: found by name
    args = list(sys.argv[1:] if argv is None else argv)
    return int(cli.run_for_app(app, args))


def worker_main(app: Celeriac, argv: Sequence[str] | None = None) -> int:
    """``start`` for a command line that runs the worker (``['worker', '-l', 'info']``)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "worker" not in args:
        raise ValueError(
            f"worker_main() runs the worker: argv must name the 'worker' command (say "
            f"['worker', '-l', 'info']), not {args!r}; use app.start(argv) for other commands"
        )
    return start(app, args)


def _boolean(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in _TRUE | _FALSE:
        return lowered in _TRUE
    raise ValueError(f"{key!r}: {value!r} is not a boolean (use true/false, 1/0, yes/no)")


def _convert(key: str, value: str) -> Any:
    """A command-line string as the setting's type (by its declaration)."""
    setting = SETTINGS[key]
    types = setting.types
    try:
        if bool in types:
            return _boolean(key, value)
        if int in types and float not in types:
            return int(value)
        if float in types:
            return float(value) if "." in value or "e" in value.lower() else int(value)
        if str in types:
            return value
        return json.loads(value)  # dicts, lists: JSON
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{key!r}: cannot read {value!r}: {exc}") from exc


def _cast(key: str, kind: str, value: str) -> Any:
    """``(int)5``, ``(float)0.5``, ``(bool)yes``, ``(json)...``/``(list)``/``(dict)``."""
    converters: dict[str, Any] = {
        "int": int, "float": float, "string": str, "str": str,
        "bool": lambda text: _boolean(key, text),
        "json": json.loads, "list": json.loads, "tuple": json.loads, "dict": json.loads,
    }  # fmt: skip
    if kind not in converters:
        raise ValueError(f"{key!r}: unknown type ({kind}); use one of {', '.join(converters)}")
    return converters[kind](value)


def parse_cmdline_config(argv: Sequence[str], namespace: str | None = "celery") -> dict[str, Any]:
    """``['worker.concurrency=4', 'task_default_queue=q']`` -> settings, as Celery reads
    them: dots become underscores, case is ignored, a leading dot or underscore puts the
    name in ``namespace``, ``(type)value`` casts, otherwise the setting's type is used."""
    settings: dict[str, Any] = {}
    for arg in argv:
        key, equals, value = arg.partition("=")
        if not equals:
            raise ValueError(f"{arg!r}: write settings as name=value (e.g. worker.concurrency=4)")
        key = key.strip().lower().replace(".", "_")
        if key.startswith("_"):
            key = f"{namespace.lower()}{key}" if namespace else key[1:]
        cast = _CAST.match(value)
        if cast:
            settings[key] = _cast(key, cast[1], value[cast.end() :])
        elif key in SETTINGS:
            settings[key] = _convert(key, value)
        else:
            raise ValueError(
                f"{arg!r}: no setting named {key!r}{did_you_mean(key, SETTINGS)} (give a "
                f"type to set another name: {key}=(string){value})"
            )
    return settings


__all__ = ["parse_cmdline_config", "start", "worker_main"]
