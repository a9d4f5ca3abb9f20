"""Stamping: headers of the caller's own put on every task of a canvas, as Celery's.

A stamp is a name and a value kept in a signature's options, its name listed in the
``stamped_headers`` option. The producer sends them as the message headers
``stamped_headers`` and ``stamps``; the task reads them as ``self.request.stamps``, and
``revoke_by_stamped_headers`` matches them. ``StampingVisitor`` decides, part by part,
what a walk over a canvas adds. This module walks workflows by their wire kind
(``subtask_type``) and calls the parts' own ``stamp``, so it imports nothing from
``canvas``: ``signature`` and ``workflows`` call into it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from celeriac.messages.call_options import (
    CALL_OPTIONS,
    NO_EFFECT_CALL_OPTIONS,
    REFUSED_CALL_OPTIONS,
)

if TYPE_CHECKING:
    from celeriac.canvas.signature import Signature

#: The option naming a signature's stamps (and the message header that lists them).
STAMPED_HEADERS = "stamped_headers"
#: Stamps live among a call's options, so a stamp cannot take the name of a call option
#: (``link``, ``queue``...: it would change the call) or of a parameter of the calls that
#: receive those options (``apply_async``, ``send_task``).
RESERVED = (
    frozenset({
        STAMPED_HEADERS, "args", "kwargs", "name", "task", "task_id", "task_type", "options",
        "app", "immutable", "subtask_type", "throw",
    })
    | CALL_OPTIONS
    | NO_EFFECT_CALL_OPTIONS
    | frozenset(REFUSED_CALL_OPTIONS)
)  # fmt: skip


class StampingVisitor(ABC):
    """What ``sig.stamp(visitor)`` adds at each part of a canvas.

    Each ``on_*`` that returns a dict adds those stamps: ``on_signature`` to one task
    call; ``on_group_start``, ``on_chain_start``, ``on_chord_header_start`` and
    ``on_chord_body`` to every task inside that part; ``on_callback`` and ``on_errback``
    to a linked callback or errback (and what it links in turn). ``headers`` are the
    stamps given so far from above. The ``*_end`` methods only observe.
    """

    @abstractmethod
    def on_signature(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        """Stamps for one task call."""

    def on_group_start(self, group: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_group_end(self, group: Signature, **headers: Any) -> None:
        return None

    def on_chain_start(self, chain: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_chain_end(self, chain: Signature, **headers: Any) -> None:
        return None

    def on_chord_header_start(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        """A chord's header is a group: by default, what ``on_group_start`` gives it."""
        return self.on_group_start(sig["kwargs"]["header"], **headers)

    def on_chord_header_end(self, sig: Signature, **headers: Any) -> None:
        self.on_group_end(sig["kwargs"]["header"], **headers)

    def on_chord_body(self, sig: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_callback(self, callback: Signature, **headers: Any) -> dict[str, Any]:
        return {}

    def on_errback(self, errback: Signature, **headers: Any) -> dict[str, Any]:
        return {}


# -- merging stamps -----------------------------------------------------------------------
def stamps_in(options: Mapping[str, Any]) -> dict[str, Any]:
    """The stamps a signature's (or a call's) options carry: name -> value."""
    names = options.get(STAMPED_HEADERS) or ()
    return {name: options.get(name) for name in names}


def _check(stamps: Mapping[str, Any], source: str) -> dict[str, Any]:
    if not isinstance(stamps, Mapping):
        raise TypeError(f"{source} must return a dict of stamps (name -> value), not {stamps!r}")
    for name in stamps:
        if not isinstance(name, str) or not name:
            raise ValueError(f"a stamp's name must be a non-empty string, not {name!r} ({source})")
        if name in RESERVED:
            raise ValueError(
                f"a stamp may not be named {name!r}, a name calls take ({source}): "
                "give the stamp another name"
            )
    return {name: value for name, value in stamps.items()}


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _combine(first: Any, second: Any, append: bool) -> Any:
    """``first`` wins, unless ``append``: then both, as one list (``first``'s first). Two
    dicts are merged key by key, by the same rule."""
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        return merge(first, second, append=append)
    if append:
        return _values(first) + _values(second)
    return first


def merge(*layers: Mapping[str, Any], append: bool = False) -> dict[str, Any]:
    """Stamps from several sources, the first one winning a clash (``append``: all kept)."""
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        for name, value in layer.items():
            merged[name] = _combine(value, merged[name], append) if name in merged else value
    return merged


def visit(
    visitor: StampingVisitor | None, method: str, sig: Any, headers: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``visitor.<method>(sig, **headers)`` adds (nothing without a visitor)."""
    if visitor is None:
        return {}
    found = getattr(visitor, method)(sig, **headers)
    return _check(found or {}, f"{type(visitor).__name__}.{method}")


def checked(headers: Mapping[str, Any]) -> dict[str, Any]:
    """The stamps given as keyword arguments to ``stamp``, checked."""
    return _check(headers, "stamp()")


def set_stamps(options: dict[str, Any], stamps: Mapping[str, Any]) -> None:
    """Write ``stamps`` into a signature's options, listing each in ``stamped_headers``."""
    names = list(dict.fromkeys([*(options.get(STAMPED_HEADERS) or ()), *stamps]))
    options.update(stamps)
    options[STAMPED_HEADERS] = names


def merge_options(own: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """Call options merged over a signature's own; its stamps stay its own (as Celery's):
    a group's or chain's options passed down never replace a member's stamps."""
    merged = {**own, **given}
    own_names = own.get(STAMPED_HEADERS)
    if own_names:
        for name in own_names:
            merged[name] = own.get(name)
        names = [*own_names, *(given.get(STAMPED_HEADERS) or ())]
        merged[STAMPED_HEADERS] = list(dict.fromkeys(names))
    return merged


# -- walking workflows --------------------------------------------------------------------
def stamp_workflow(
    workflow: Signature, visitor: StampingVisitor | None, append: bool, headers: dict[str, Any]
) -> None:
    """Stamp every task call inside a chain, group or chord (and what they link)."""
    kind = workflow.subtask_type
    start, end = {
        "chain": ("on_chain_start", "on_chain_end"),
        "group": ("on_group_start", "on_group_end"),
        "chord": ("on_chord_header_start", "on_chord_header_end"),
    }[str(kind)]
    inner = merge(headers, visit(visitor, start, workflow, headers), append=append)
    workflow.stamp_links(visitor, append, **inner)
    kwargs = workflow["kwargs"]
    parts: list[Signature] = (
        kwargs["header"]["kwargs"]["tasks"] if kind == "chord" else kwargs["tasks"]
    )
    for part in parts:
        part.stamp(visitor, append, **inner)
    if visitor is not None:
        getattr(visitor, end)(workflow, **inner)
    body = kwargs.get("body") if kind == "chord" else None
    if body is not None:
        # Celery stamps a chord's body only with a visitor; here the body is always
        # stamped, so a chord's stamps reach every task of it.
        body_headers = merge(inner, visit(visitor, "on_chord_body", workflow, inner), append=append)
        body.stamp(visitor, append, **body_headers)


# -- calls --------------------------------------------------------------------------------
def stamp_names(options: Mapping[str, Any]) -> list[str]:
    """The stamps a call's options carry, by name (its ``stamped_headers``), checked."""
    names = options.get(STAMPED_HEADERS)
    if names is None:
        return []
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"{STAMPED_HEADERS} must be a list of stamp names, not {names!r}")
    return list(names)
