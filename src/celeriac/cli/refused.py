"""Celery worker options that celeriac does not offer, each refused with what to use instead.

Edge layer (cli). Such an option is declared (so ``--help`` lists it) but never reaches
the worker: given, it stops the command with exit 64 and a sentence naming the
replacement. Accepting it silently would leave a user believing it took effect.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from celeriac.cli.base import CLIError

F = TypeVar("F", bound=Callable[..., Any])

#: (option names, takes a value, a few words for --help, why and what to do instead)
REFUSED: tuple[tuple[tuple[str, ...], bool, str, str], ...] = (
    (
        ("-S", "--statedb"), True, "revocations live in the broker",
        "not needed: revocations are kept in the broker, so a restarted worker still knows "
        "them; drop the option",
    ),
    (
        ("--executable",), True, "for --detach only",
        "it only applies to --detach, which is refused: run the worker in the foreground "
        "under a process manager",
    ),
)  # fmt: skip


def _refuse(reason: str) -> Callable[[click.Context, click.Parameter, Any], None]:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value not in (None, False):
            raise CLIError(f"{'/'.join(param.opts)} is not supported: {reason}")

    return callback


def refused_options(command: F) -> F:
    """Declare every option of ``REFUSED`` on ``command`` (none reaches its function)."""
    for names, takes_value, short, reason in reversed(REFUSED):
        command = click.option(
            *names,
            is_flag=not takes_value,
            metavar="VALUE" if takes_value else None,
            expose_value=False,
            callback=_refuse(reason),
            help=f"Refused: {short}.",
        )(command)
    return command


__all__ = ["REFUSED", "refused_options"]
