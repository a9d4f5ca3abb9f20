"""The command registry: what a worker answers to, filled by ``control_command`` and
``inspect_command`` (Celery's decorators, ``celeriac.worker.control`` re-exports them), or
by Celery's older ``Panel.register``.

Pure logic. A command is a function ``fn(state, **arguments)`` returning its reply (a
JSON-able value; ``ok(value)`` / ``nok(value)`` give Celery's ``{"ok": ...}`` /
``{"error": ...}``). ``args`` (``[(name, type), ...]``) and ``variadic`` tell the command
line how to turn positional words into arguments, as in Celery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

Handler = Callable[..., Any]
H = TypeVar("H", bound=Handler)
Kind = Literal["control", "inspect"]


def ok(value: Any) -> dict[str, Any]:
    return {"ok": value}


def nok(value: Any) -> dict[str, Any]:
    return {"error": value}


class NoReply:
    """Returned by a command that answers nothing (``shutdown``, as in Celery)."""


NO_REPLY = NoReply()


@dataclass(frozen=True)
class CommandInfo:
    name: str
    kind: Kind
    handler: Handler
    alias: str | None = None
    visible: bool = True
    default_timeout: float = 1.0
    help: str = ""
    signature: str | None = None
    args: tuple[tuple[str, Callable[[str], Any]], ...] = ()
    variadic: str | None = None


#: Every command by name (and alias): the built-in ones and the project's own.
COMMANDS: dict[str, CommandInfo] = {}


def _register(
    kind: Kind,
    name: str | None = None,
    alias: str | None = None,
    visible: bool = True,
    default_timeout: float = 1.0,
    help: str | None = None,
    signature: str | None = None,
    args: Sequence[tuple[str, Callable[[str], Any]]] | None = None,
    variadic: str | None = None,
) -> Callable[[H], H]:
    def register(fn: H) -> H:
        command = name or fn.__name__
        text = help or (fn.__doc__ or "").strip().split("\n")[0]
        info = CommandInfo(
            command, kind, fn, alias, visible, float(default_timeout), text, signature,
            tuple(args or ()), variadic,
        )  # fmt: skip
        COMMANDS[command] = info
        if alias:
            COMMANDS[alias] = info
        return fn

    return register


def control_command(**options: Any) -> Callable[[H], H]:
    """Register a remote-control command: ``@control_command()`` over ``fn(state, ...)``.

    Options as Celery's: ``name``, ``alias``, ``visible``, ``default_timeout``, ``help``,
    ``signature``, ``args`` and ``variadic``."""
    return _register("control", **options)


def inspect_command(**options: Any) -> Callable[[H], H]:
    """Register an inspect command (one that reads, does not change, the worker)."""
    return _register("inspect", **options)


class _Handlers(Mapping[str, Handler]):
    """``Panel.data``: each registered command's function, by name and alias (live)."""

    def __getitem__(self, name: str) -> Handler:
        return COMMANDS[name].handler

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class Panel:
    """Celery's registry of remote-control commands, the API before ``control_command``.

    ``@Panel.register`` registers a control command under the function's name;
    ``@Panel.register(type="inspect", name=..., alias=..., ...)`` takes the decorators'
    options plus ``type``. ``Panel.data`` maps each name to its function."""

    data: Mapping[str, Handler] = _Handlers()

    @classmethod
    def register(cls, *fn: Handler, type: str = "control", **options: Any) -> Any:
        if type not in ("control", "inspect"):
            raise ValueError(f"Panel.register(type={type!r}): type is 'control' or 'inspect'")
        decorate = _register("inspect" if type == "inspect" else "control", **options)
        if len(fn) > 1:
            raise TypeError("Panel.register takes one function (or options, as a decorator)")
        return decorate(fn[0]) if fn else decorate


def commands_of(kind: Kind) -> dict[str, CommandInfo]:
    """The visible commands of one kind, by their own name (aliases left out)."""
    return {
        name: info
        for name, info in sorted(COMMANDS.items())
        if info.kind == kind and info.visible and info.name == name
    }
