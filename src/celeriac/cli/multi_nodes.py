"""``celeriac multi``'s arguments turned into nodes: names, and each node's worker argv.

Edge layer (cli); pure (no processes). ``start 3`` names nodes ``celeriac1..3`` (prefix
``--range-prefix``), ``start image video`` names them, ``foo@host`` is a full node name.
Worker options pass through to every node; ``-c:1-3 10`` or ``--concurrency:image=10``
sets an option for some nodes only. In every value ``%n`` is the node's short name,
``%h`` its full name, ``%d`` its domain; ``%I`` is empty and ``%i`` is 0 (the worker's
own process: prefork children log to the same file).
"""

from __future__ import annotations

import re
import signal as signals
import socket
from dataclasses import dataclass, field

DEFAULT_PIDFILE = "%n.pid"
DEFAULT_LOGFILE = "%n%I.log"
_PIDFILE = ("--pidfile",)
_LOGFILE = ("-f", "--logfile")
_SIGNAL = re.compile(r"^-(?:(\d+)|([A-Z][A-Z0-9]*))$")  # -9, -KILL, -TERM
_SCOPED = re.compile(r"^(--?[A-Za-z][\w-]*):([^=]+)(?:=(.*))?$")  # -c:1-3 / --opt:a,b=v


class MultiUsageError(ValueError):
    """The arguments do not describe nodes; the message says how to write them."""


@dataclass
class Node:
    """One worker of the group: its name and the options it starts with."""

    name: str  # full node name, e.g. celeriac1@host
    options: list[str] = field(default_factory=list)

    @property
    def short(self) -> str:
        return self.name.partition("@")[0]

    def expand(self, text: str) -> str:
        host = self.name.partition("@")[2]
        values = {"n": self.short, "h": self.name, "d": host.partition(".")[2], "i": "0",
                  "I": "", "%": "%"}  # fmt: skip
        return re.sub(r"%(.)", lambda m: values.get(m[1], m[0]), text)

    def option(self, names: tuple[str, ...], default: str) -> str:
        """The value of the last of ``names`` in the node's options (expanded)."""
        found = default
        words = self.options
        for index, word in enumerate(words):
            for name in names:
                if word == name and index + 1 < len(words):
                    found = words[index + 1]
                elif word.startswith(name + "=") and name.startswith("--"):
                    found = word[len(name) + 1 :]
        return self.expand(found)

    @property
    def pidfile(self) -> str:
        return self.option(_PIDFILE, DEFAULT_PIDFILE)

    @property
    def logfile(self) -> str:
        return self.option(_LOGFILE, DEFAULT_LOGFILE)

    def worker_argv(self, loglevel: str | None = None) -> list[str]:
        """The ``worker ...`` arguments this node starts with."""
        argv = ["worker", "-n", self.name, "--pidfile", self.pidfile, "--logfile", self.logfile]
        if loglevel and not any(w in ("-l", "--loglevel") or w.startswith("--loglevel=")
                                for w in self.options):  # fmt: skip
            argv += ["-l", loglevel]
        skip = False
        for word in self.options:
            if skip:
                skip = False
                continue
            if word in (*_PIDFILE, *_LOGFILE):
                skip = True  # already given above, expanded
                continue
            if word.startswith(("--pidfile=", "--logfile=")):
                continue
            argv.append(self.expand(word))
        return argv


def split_names(args: list[str]) -> tuple[list[str], list[str]]:
    """``(node names, options)``: names come first, options from the first ``-`` word."""
    for index, arg in enumerate(args):
        if arg.startswith("-"):
            return args[:index], args[index:]
    return args, []


def find_signal(options: list[str], default: str) -> tuple[str, list[str]]:
    """The signal named as ``-TERM``/``-KILL``/``-9`` among ``options``, and the rest."""
    rest: list[str] = []
    found = default
    for word in options:
        match = _SIGNAL.match(word)
        if match and (match[1] or hasattr(signals, "SIG" + match[2])):
            found = signals.Signals(int(match[1])).name if match[1] else "SIG" + match[2]
            continue
        rest.append(word)
    return found, rest


def build_nodes(
    names: list[str], options: list[str], *, hostname: str | None = None, prefix: str = "celeriac"
) -> list[Node]:
    """The nodes for ``names`` (a count or names), with their options resolved."""
    host = hostname or socket.gethostname()
    if not names:
        raise MultiUsageError("name the nodes: a number (start 3) or names (start image video)")
    if len(names) == 1 and names[0].isdigit():
        count = int(names[0])
        if count < 1:
            raise MultiUsageError("the number of nodes must be at least 1")
        shorts = [f"{prefix}{n}" for n in range(1, count + 1)]
    else:
        shorts = names
    nodes = [Node(s if "@" in s else f"{s}@{host}") for s in shorts]
    for node in nodes:
        node.name = node.name.replace("%h", host)
    common, scoped = _split_scoped(options)
    for index, node in enumerate(nodes, start=1):
        node.options = list(common)
        for option, spec, value in scoped:
            if _selects(spec, index, node.short):
                node.options += _set_option(node.options, option, value)
    return nodes


def _split_scoped(options: list[str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    common: list[str] = []
    scoped: list[tuple[str, str, str]] = []
    words = iter(options)
    for word in words:
        match = _SCOPED.match(word)
        if match is None:
            common.append(word)
            continue
        value = match[3]
        if value is None:
            value = next(words, None)
            if value is None:
                raise MultiUsageError(f"{word}: give the value after it ({word} VALUE)")
        scoped.append((match[1], match[2], value))
    return common, scoped


def _selects(spec: str, index: int, short: str) -> bool:
    """``1-3``, ``1,2``, ``image`` or ``image,video`` selects this node?"""
    for part in spec.split(","):
        low, dash, high = part.partition("-")
        if dash and low.isdigit() and high.isdigit():
            if int(low) <= index <= int(high):
                return True
        elif part == str(index) or part == short:
            return True
    return False


def _set_option(options: list[str], option: str, value: str) -> list[str]:
    """Remove ``option`` from ``options`` (in place); the words that set it anew."""
    kept: list[str] = []
    skip = False
    for word in options:
        if skip:
            skip = False
            continue
        if word == option:
            skip = True
            continue
        if option.startswith("--") and word.startswith(option + "="):
            continue
        kept.append(word)
    options[:] = kept
    return [f"{option}={value}"] if option.startswith("--") else [option, value]


__all__ = [
    "DEFAULT_LOGFILE", "DEFAULT_PIDFILE", "MultiUsageError", "Node", "build_nodes",
    "find_signal", "split_names",
]  # fmt: skip
