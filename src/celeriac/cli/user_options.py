"""``app.user_options``: command-line options of one's own, as Celery's.

Edge layer (cli). ``app.user_options['preload']`` options are added to every command and
their values sent with ``user_preload_options``; ``'worker'``, ``'beat'`` and ``'events'``
options are added to that command. The values are taken out of the command's own
arguments and kept in ``ctx.meta`` (``user_values``): the worker hands them, with the
preload values, to the user bootsteps and ``celeryd_init``'s ``options``.
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import click

from celeriac import signals

#: ``ctx.meta`` keys: the command to extend (a copy), and the user options' values.
COMMAND = "celeriac.user_command"
VALUES = "celeriac.user_values"
#: The keys of ``app.user_options`` a command reads, besides ``'preload'``.
COMMANDS = ("worker", "beat", "events")


def private_copy(command: click.Command) -> click.Command:
    """A copy of ``command`` whose parameters can be extended for this run only (the
    command objects are shared by every run in the process)."""
    mine = copy.copy(command)
    mine.params = list(command.params)
    return mine


def user_values(ctx: click.Context) -> dict[str, Any]:
    """The values of the user options given to this run (preload and the command's own)."""
    return dict(ctx.meta.get(VALUES, {}))


def attach(ctx: click.Context, app: Any) -> None:
    """Add the app's user options to the command about to run (``ctx.meta[COMMAND]``)."""
    command: click.Command | None = ctx.meta.get(COMMAND)
    table = getattr(app, "user_options", None) or {}
    _warn_unread(table)
    checked = {key: _options(table, key) for key in ("preload", *COMMANDS)}  # all, each run
    preload = checked["preload"]
    own = checked[command.name] if command and command.name in COMMANDS else []
    if command is None or not (preload or own):
        return
    command.params.extend([*preload, *own])
    callback = command.callback
    if callback is not None:
        command.callback = _taking_values(callback, app, preload, own)


def _options(table: Any, key: str) -> list[click.Parameter]:
    found = list(table.get(key, ()))
    for option in found:
        if not isinstance(option, click.Parameter):
            raise click.UsageError(
                f"app.user_options[{key!r}] holds {option!r}: add click.Option objects, "
                f"e.g. click.Option(['--my-flag'], is_flag=True)"
            )
    return sorted(found, key=lambda option: option.name or "")  # a set: a stable order


def _warn_unread(table: Any) -> None:
    for key, options in table.items():
        if options and key not in ("preload", *COMMANDS):
            warnings.warn(
                f"app.user_options[{key!r}] is read by no command: use 'preload' (every "
                f"command) or one of {', '.join(map(repr, COMMANDS))}",
                stacklevel=3,
            )


def _taking_values(
    callback: Callable[..., Any],
    app: Any,
    preload: Iterable[click.Parameter],
    own: Iterable[click.Parameter],
) -> Callable[..., Any]:
    """``callback`` without the user options' arguments: their values go to
    ``ctx.meta`` and, for the preload ones, ``user_preload_options``."""
    preload_names = [option.name for option in preload if option.name]
    own_names = [option.name for option in own if option.name]

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        preloaded = {name: kwargs.pop(name) for name in preload_names if name in kwargs}
        values = {name: kwargs.pop(name) for name in own_names if name in kwargs}
        click.get_current_context().meta[VALUES] = {**preloaded, **values}
        if preloaded:
            signals.user_preload_options.send(sender=callback, app=app, options=preloaded)
        return callback(*args, **kwargs)

    return run


__all__ = ["COMMAND", "COMMANDS", "VALUES", "attach", "private_copy", "user_values"]
