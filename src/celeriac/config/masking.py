"""Settings fit to show: secrets hidden (``report``, ``inspect conf``, the dashboard), as
Celery censors its configuration. Pure logic: the stdlib only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: A setting (or a key inside one) whose value is a secret: shown as ``********``.
#: (``key_prefix`` names keys, it is no key: shown.)
SECRET_NAME = re.compile(
    "API|TOKEN|KEY(?!_?PREFIX)|SECRET|PASS|SIGNATURE|DATABASE|CREDENTIAL", re.IGNORECASE
)
MASK = "********"
# user:password@ in a URL (also each part of a ';'-separated sentinel list).
_URL_PASSWORD = re.compile(r"(://[^:/@;\s]*:)[^@;\s]*(@)")


def mask_url(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://:********@host``; other text unchanged."""
    return _URL_PASSWORD.sub(rf"\1{MASK}\2", url)


def masked(key: str, value: Any) -> Any:
    """``value`` fit to print under ``key``: secrets hidden, nested values too."""
    if isinstance(key, str) and SECRET_NAME.search(key) and value not in (None, "", {}, []):
        return MASK
    if isinstance(value, str):
        return mask_url(value)
    if isinstance(value, Mapping):
        return {k: masked(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(key, item) for item in value)
    return value


__all__ = ["MASK", "SECRET_NAME", "mask_url", "masked"]
