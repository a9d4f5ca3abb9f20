"""``celeriac inspect``, ``celeriac control`` and ``celeriac status``: Celery's remote
control programs, with its options (``-t``, ``-d``, ``-j/--json``, ``--list``).

Edge layer (cli). Positional words after the command become its arguments as the
command's ``args``/``variadic`` say (``control rate_limit proj.add 10/m``). Each reply is
printed as it arrives; when no worker answers in time the exit status is
``EX_UNAVAILABLE`` (69), as in Celery.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pprint import pformat
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.control.inspect import flatten_reply
from celeriac.control.registry import Kind, commands_of
from celeriac.exceptions import CeleriacError
from celeriac.worker.exitcodes import EX_UNAVAILABLE

NO_REPLY = "No nodes replied within time constraint"


class NoNodeReplied(CLIError):
    exit_code = EX_UNAVAILABLE


class CommandName(click.Choice[str]):
    """The built-in commands of a kind, for help and completion. A name is checked once
    the app is loaded, since a project's own commands register when its modules import."""

    def __init__(self, kind: Kind) -> None:
        super().__init__(list(commands_of(kind)))

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value


def _remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("-t", "--timeout", type=float, default=1.0,
                     help="Timeout in seconds waiting for reply."),
        click.option("-d", "--destination", metavar="COMMA SEPARATED LIST",
                     help="Comma separated list of destination node names."),
        click.option("-j", "--json", "as_json", is_flag=True,
                     help="Use json as output format."),
    ]):  # fmt: skip
        fn = option(fn)
    return fn


def _list_option(kind: Kind) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def show(ctx: click.Context, param: click.Parameter, value: bool) -> None:
        if not value:
            return
        formatter = click.HelpFormatter()
        with formatter.section(f"{kind.capitalize()} Commands"):
            formatter.write_dl([
                (f"{name} {info.signature}" if info.signature else name, info.help)
                for name, info in commands_of(kind).items()
            ])  # fmt: skip
        click.echo(formatter.getvalue(), nl=False)
        ctx.exit()

    return click.option(
        "--list", is_flag=True, expose_value=False, is_eager=True, callback=show,
        help=f"List available {kind} commands and exit.",
    )  # fmt: skip


def _nodes(destination: str | None) -> list[str] | None:
    if not destination:
        return None
    return [name.strip() for name in destination.split(",") if name.strip()]


def _arguments(kind: Kind, command: str, words: list[str]) -> dict[str, Any]:
    """The command's arguments from the words after it (its ``args``, then ``variadic``)."""
    info = commands_of(kind).get(command)
    if info is None:
        names = ", ".join(commands_of(kind))
        raise click.UsageError(
            f"Command {command} not recognized. Available {kind} commands: {names}"
        )
    arguments: dict[str, Any] = {}
    rest = list(words)
    for name, convert in info.args:
        if not rest:
            break
        word = rest.pop(0)
        try:
            arguments[name] = convert(word)
        except ValueError as exc:
            raise click.UsageError(f"{command}: {name} {word!r} is not valid: {exc}") from None
    if info.variadic:
        arguments[info.variadic] = rest
    elif rest:
        raise click.UsageError(f"Command {command!r} takes arguments: {info.signature or ''}")
    return arguments


def pretty(reply: Any) -> tuple[str, str]:
    """``(OK | ERROR, text)`` for one node's reply, as Celery prints it."""
    if isinstance(reply, list):
        return "OK", "\n".join(f"* {item}" for item in reply) if reply else "- empty -"
    if isinstance(reply, dict) and ("ok" in reply or "error" in reply):
        status = "OK" if "ok" in reply else "ERROR"
        inner = pretty(reply["ok"] if "ok" in reply else reply["error"])[1]
        return status, textwrap.indent(inner, "    ")
    if isinstance(reply, dict):
        return "OK", json.dumps(reply, sort_keys=True, indent=4, default=repr)
    if isinstance(reply, str):
        return "OK", reply
    return "OK", pformat(reply)


def _say(show_body: bool) -> Callable[[dict[str, Any]], None]:
    def say(node_reply: dict[str, Any]) -> None:
        node, reply = next(iter(node_reply.items()))
        status, body = pretty(reply)
        click.echo(f"->  {node}: {status}")
        if show_body and body:
            click.echo(textwrap.indent(body, "    "))

    return say


def _online(count: int) -> None:
    obj = click.get_current_context().find_object(CLIContext)
    if obj is not None and obj.quiet:  # -q: the replies only
        return
    click.echo(f"\n{count} node{'' if count == 1 else 's'} online.")


def _broadcast(obj: CLIContext, command: str, **options: Any) -> list[dict[str, Any]]:
    app = obj.load_app()
    try:
        replies = app.control.broadcast(command, reply=True, **options)
    except CeleriacError as exc:
        raise NoNodeReplied(f"could not reach the broker: {exc}") from exc
    if not replies:
        raise NoNodeReplied(NO_REPLY)
    return replies


@click.command("inspect", context_settings={"allow_extra_args": True})
@click.argument("command", type=CommandName("inspect"), metavar="COMMAND")
@_list_option("inspect")
@_remote_options
@click.pass_context
def inspect_cli(
    ctx: click.Context, command: str, timeout: float, destination: str | None, as_json: bool
) -> None:
    """Inspect the workers by sending them the COMMAND inspect command."""
    ctx.obj.load_app().finalize()  # first: a project's own commands register on import
    arguments = _arguments("inspect", command, list(ctx.args))
    replies = _broadcast(
        ctx.obj, command, arguments=arguments, destination=_nodes(destination),
        timeout=timeout, callback=None if as_json else _say(show_body=True),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(flatten_reply(replies), default=repr))
        return
    _online(len(replies))


@click.command("control", context_settings={"allow_extra_args": True})
@click.argument("command", type=CommandName("control"), metavar="COMMAND")
@_list_option("control")
@_remote_options
@click.pass_context
def control_cli(
    ctx: click.Context, command: str, timeout: float, destination: str | None, as_json: bool
) -> None:
    """Send the COMMAND control command to the workers."""
    ctx.obj.load_app().finalize()  # first: a project's own commands register on import
    arguments = _arguments("control", command, list(ctx.args))
    replies = _broadcast(
        ctx.obj, command, arguments=arguments, destination=_nodes(destination),
        timeout=timeout, callback=None if as_json else _say(show_body=True),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(replies, default=repr))


@click.command("status")
@_remote_options
@click.pass_obj
def status_cli(obj: CLIContext, timeout: float, destination: str | None, as_json: bool) -> None:
    """Show the workers that are online (those that answer a ping)."""
    replies = _broadcast(
        obj, "ping", arguments={}, destination=_nodes(destination), timeout=timeout,
        callback=None if as_json else _say(show_body=False),
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(flatten_reply(replies), default=repr))
    _online(len(flatten_reply(replies)))


__all__ = ["control_cli", "inspect_cli", "status_cli"]
