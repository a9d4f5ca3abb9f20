"""Names celeriac does not know: the closest known name, and the warning that offers it.

Every place that meets an unknown name (a setting, a transport option, a task option)
says it the same way: what was not read, then ``; did you mean 'x'?`` when a known name
is close, else what the caller adds instead. Leaf-level: imports only the stdlib.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

from celeriac.exceptions import CeleryWarning

CUTOFF = 0.6  # difflib's similarity ratio: below it a name is not offered as a fix


class UnknownSettingWarning(CeleryWarning):
    """A setting name celeriac does not know (often a misspelling)."""


def closest(name: str, known: Iterable[str], cutoff: float = CUTOFF) -> str | None:
    """The known name most like ``name``, or None when none is close."""
    import difflib  # loaded the first time a name is unknown, not by every process

    matches = difflib.get_close_matches(name, list(known), n=1, cutoff=cutoff)
    return matches[0] if matches else None


def did_you_mean(name: str, known: Iterable[str], otherwise: str = "") -> str:
    """``"; did you mean 'x'?"`` for the closest known name, else ``otherwise``."""
    match = closest(name, known)
    return f"; did you mean {match!r}?" if match else otherwise


def warn_unknown(
    message: str,
    name: str,
    known: Iterable[str],
    *,
    otherwise: str = "",
    stacklevel: int = 2,
) -> None:
    """Warn ``message`` plus ``did_you_mean(name, ...)`` as an ``UnknownSettingWarning``.

    ``stacklevel`` counts from the caller, as ``warnings.warn``'s does, so the warning
    points at the same line it would if the caller warned itself.
    """
    hint = did_you_mean(name, known, otherwise)
    warnings.warn(message + hint, UnknownSettingWarning, stacklevel=stacklevel + 1)


__all__ = ["UnknownSettingWarning", "closest", "did_you_mean", "warn_unknown"]
