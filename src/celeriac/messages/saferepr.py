"""``saferepr``: the bounded ``repr`` Celery writes into a message's ``argsrepr`` and
``kwargsrepr`` headers (and so into events and the dashboard).

Two bounds, as in Celery: ``maxlen``, the characters to spend (a long string is cut at a
word and ends in ``...``; once spent, the rest of a container is ``, ...`` and its
brackets are still closed), and ``maxlevels``, the containers shown inside one another
(deeper ones become ``[...]``, ``{...}``, ``(...)``; 0 means no limit). Walked with an
explicit stack, so deep or self-containing values cannot exhaust Python's recursion.
Pure: imports the standard library and ``serializers.is_decimal``.
"""

from __future__ import annotations

from collections.abc import Iterator
from numbers import Number
from typing import Any, NamedTuple

from celeriac.messages.serializers import is_decimal

# Token kinds: text spent from the budget as it is, or rendered with what is left of it.
_OPEN, _CLOSE, _SEP, _WHOLE = "open", "close", "sep", "whole"  # never cut
_TEXT, _QUOTED, _KEY = "text", "quoted", "key"  # cut to the budget left


class _Mark(NamedTuple):
    """A separator or a dict key among a container's items (never one of its values)."""

    kind: str
    value: Any


_COMMA = _Mark(_SEP, ", ")
_COLON = _Mark(_SEP, ": ")


def _items(value: Any) -> Iterator[Any]:
    pairs = value.items() if isinstance(value, dict) else None
    for index, item in enumerate(pairs if pairs is not None else value):
        if index:
            yield _COMMA
        if pairs is not None:
            yield _Mark(_KEY, item[0])
            yield _COLON
            yield item[1]
        else:
            yield item


def _brackets(value: Any) -> tuple[str, str] | None:
    """The opening and closing text of a container; None for anything else."""
    if isinstance(value, (set, frozenset)):
        if type(value) is set:
            return "{", "}"
        return f"{type(value).__name__}({{", "})"
    if isinstance(value, tuple):
        return "(", ",)" if len(value) == 1 else ")"
    if isinstance(value, dict):
        return "{", "}"
    if isinstance(value, list):
        return "[", "]"
    return None


def _plain_repr(value: Any) -> str:
    try:
        return repr(value)
    except Exception as exc:  # a broken __repr__ must not stop the message being sent
        return f"<Unrepresentable {type(value)!r}{id(value):#x}: {exc!r}>"


class _Walk:
    """The tokens of a value, depth first; ``open_closers`` says what is left open."""

    def __init__(self, value: Any, maxlevels: int) -> None:
        self.maxlevels = maxlevels
        # (items left, closing text, id of the container); the root holds the value alone.
        self.frames: list[tuple[Iterator[Any], str, int]] = [(iter([value]), "", 0)]

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        while self.frames:
            items, closer, _ = self.frames[-1]
            item = next(items, _END)
            if item is not _END:
                yield self._token(item)
            elif len(self.frames) > 1:
                self.frames.pop()
                yield _CLOSE, closer
            else:
                return

    def open_closers(self, skip_innermost: bool) -> list[str]:
        closers = [closer for _, closer, _ in reversed(self.frames[1:])]
        return closers[1:] if skip_innermost else closers

    def _token(self, item: Any) -> tuple[str, Any]:
        if isinstance(item, _Mark):
            return item.kind, item.value
        if is_decimal(item):
            return _TEXT, repr(item)
        if isinstance(item, Number):
            return _TEXT, str(item)
        if isinstance(item, (str, bytes)):
            return _QUOTED, item
        if isinstance(item, (set, frozenset)) and not item:
            return _TEXT, f"{type(item).__name__}()"
        brackets = _brackets(item)
        if brackets is None:
            return _TEXT, _plain_repr(item)
        opener, closer = brackets
        level = len(self.frames) - 1
        if self.maxlevels and level >= self.maxlevels:
            return _WHOLE, f"{opener}...{closer}"
        if any(ident == id(item) for _, _, ident in self.frames[1:]):
            return _TEXT, f"<Recursion on {type(item).__name__} with id={id(item)}>"
        self.frames.append((_items(item), closer, id(item)))
        return _OPEN, opener


_END = object()


def _truncate(text: str, maxlen: int | None) -> str:
    """Celery's cut: at the last space within ``maxlen`` characters, then ``...``."""
    if maxlen and len(text) >= maxlen:
        return text[:maxlen].rsplit(" ", 1)[0] + "..."
    return text


def _quoted(value: str | bytes, maxlen: int | None) -> str:
    if isinstance(value, str):
        return "'{}'".format(_truncate(value, maxlen).replace("'", "\\'"))
    cut = maxlen is not None and 0 < maxlen < len(value)
    chunk = value[:maxlen] if cut else value
    try:
        text = chunk.decode("utf-8")
    except UnicodeDecodeError:  # binary data: shown as hex
        text = chunk.hex()
    return f"b'{text}{'...' if cut else ''}'"


def _render(kind: str, value: Any, budget: int | None, maxlevels: int) -> str:
    if kind == _KEY:
        return saferepr(value, budget, maxlevels)
    if kind == _QUOTED:
        return _quoted(value, budget)
    if kind == _TEXT:
        return _truncate(value, budget)
    return str(value)


def saferepr(value: Any, maxlen: int | None = None, maxlevels: int = 3) -> str:
    """``repr(value)`` within ``maxlen`` characters (about) and ``maxlevels`` nestings."""
    if maxlevels >= 0:  # the common call, ``(1, 'a')``: its repr is what the walk writes
        plain = _flat_repr(value)
        if plain is not None and (maxlen is None or len(plain) < maxlen):
            return plain
    return _walked(value, maxlen, maxlevels)


# Scalars whose ``repr`` is what the walk writes for them (exact types: a subclass may
# have a ``repr`` of its own).
_SCALARS = frozenset({int, float, bool, type(None)})


def _flat_repr(value: Any) -> str | None:
    """``repr`` of a tuple, list or dict holding only plain scalars and strings that
    ``repr`` writes as they are (no quote, backslash or unprintable character); None for
    anything else. Shorter than the budget, the walk would write exactly this."""
    kind = type(value)
    if kind is tuple or kind is list:
        items: Any = value
    elif kind is dict:
        items = [*value, *value.values()]
    else:
        return None
    for item in items:
        item_kind = type(item)
        if item_kind is str:
            if "'" in item or "\\" in item or not item.isprintable():
                return None
        elif item_kind not in _SCALARS:
            return None
    return repr(value)


def _walked(value: Any, maxlen: int | None, maxlevels: int) -> str:
    out: list[str] = []
    budget = maxlen
    walk = _Walk(value, maxlevels)
    for kind, token in walk:
        if budget is not None and budget <= 0:
            if kind == _CLOSE:  # the last item fitted: nothing was left out
                out.append(token)
                continue
            out.append(", ...")
            out.extend(walk.open_closers(skip_innermost=kind == _OPEN))
            break
        text = _render(kind, token, budget, maxlevels)
        out.append(text)
        if budget is not None:
            budget -= len(text)
    return "".join(out)
