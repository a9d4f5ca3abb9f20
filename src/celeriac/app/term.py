"""``colored``: text with ANSI colour codes, built by chaining (``app.log.colored()``).

App core, imports nothing from celeriac. ``colored(enabled=False)`` renders the same
text without codes, so a caller writes one line for terminals and log files alike.
"""

from __future__ import annotations

import sys
from typing import Any

_RESET = "\033[0m"
_STYLES = {"bold": "\033[1m", "underline": "\033[4m", "blink": "\033[5m", "reverse": "\033[7m"}


class colored:  # Celery's name for it
    """``str(colored().red("failed: ", colored().bold(name)))``; ``+`` joins as text."""

    def __init__(self, *parts: Any, enabled: bool = True, op: str = "") -> None:
        self.parts = parts
        self.enabled = enabled and not sys.platform.startswith("win")
        self.op = op

    def _node(self, parts: tuple[Any, ...], op: str) -> colored:
        return colored(*parts, enabled=self.enabled, op=op)

    def embed(self) -> str:
        """The text with its codes, without the final reset."""
        prefix = self.op if self.enabled else ""
        return prefix + "".join(
            part.embed() if isinstance(part, colored) else str(part) for part in self.parts
        )

    def no_color(self) -> str:
        """The text alone."""
        return "".join(
            part.no_color() if isinstance(part, colored) else str(part) for part in self.parts
        )

    def __str__(self) -> str:
        return self.embed() + (_RESET if self.enabled else "")

    def __add__(self, other: object) -> str:
        return str(self) + str(other)

    def __radd__(self, other: object) -> str:
        return str(other) + str(self)

    def reset(self, *parts: Any) -> colored:
        return self._node(parts or ("",), _RESET)

    def black(self, *parts: Any) -> colored:
        return self._fg(0, parts)

    def red(self, *parts: Any) -> colored:
        return self._fg(1, parts)

    def green(self, *parts: Any) -> colored:
        return self._fg(2, parts)

    def yellow(self, *parts: Any) -> colored:
        return self._fg(3, parts)

    def blue(self, *parts: Any) -> colored:
        return self._fg(4, parts)

    def magenta(self, *parts: Any) -> colored:
        return self._fg(5, parts)

    def cyan(self, *parts: Any) -> colored:
        return self._fg(6, parts)

    def white(self, *parts: Any) -> colored:
        return self._fg(7, parts)

    def bold(self, *parts: Any) -> colored:
        return self._node(parts, _STYLES["bold"])

    def underline(self, *parts: Any) -> colored:
        return self._node(parts, _STYLES["underline"])

    def blink(self, *parts: Any) -> colored:
        return self._node(parts, _STYLES["blink"])

    def reverse(self, *parts: Any) -> colored:
        return self._node(parts, _STYLES["reverse"])

    def _fg(self, index: int, parts: tuple[Any, ...]) -> colored:
        return self._node(parts, f"\033[1;{30 + index}m")


__all__ = ["colored"]
