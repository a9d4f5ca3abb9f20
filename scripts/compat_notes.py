"""Reviewed notes for docs/compat.md: why celeriac does not offer a Celery name, or how it
differs.

Keyed by group (see scripts/compat_page.py) and name; a key with ``*``, ``?`` or ``[``
is a pattern for a family of names (``beat_*``) and applies only to names celeriac
does not offer. ``scripts/gen_compat_doc.py --check`` fails on a name that is not
offered and has no note here, and on a note that no longer matches what celeriac has.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Note:
    kind: str  # "absent": not offered; "stub": exists but does nothing; "differs"
    text: str
    anchor: str | None = None  # differs: the anchor in docs/differences-from-celery.md
    at: str | None = None  # differs: where celeriac offers it instead (a dotted path)


def absent(text: str) -> Note:
    return Note("absent", text)


def stub(text: str) -> Note:
    return Note("stub", text)


def differs(text: str, anchor: str, at: str | None = None) -> Note:
    return Note("differs", text, anchor, at)


NOTES: dict[str, dict[str, Note]] = {}

PENDING: dict[str, set[str]] = {}
