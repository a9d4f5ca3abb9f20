"""``celeriac amqp``: Celery's AMQP admin shell for RabbitMQ (``queue.declare``, ...).

Edge layer (cli). Each AMQP method is a subcommand taking Celery's positional arguments
(``queue.declare NAME [PASSIVE [DURABLE [AUTO_DELETE]]]``, booleans as yes/no, true/false
or 1/0) and printing ``OK`` once the broker has done it. ``repl`` (or ``amqp`` alone)
reads those commands from a prompt over one connection, so ``basic.ack`` can acknowledge
what ``basic.get`` fetched. The connection lives in ``amqp_session``.
"""

from __future__ import annotations

import pprint
import shlex
import sys
from typing import TYPE_CHECKING, Any

import click

from celeriac.cli.amqp_session import AMQPSession, amqp_target, dump_message
from celeriac.cli.base import CLIContext, CLIError

if TYPE_CHECKING:  # aiormq is the amqp extra's: imported when a session starts
    import aiormq.abc

OK = "OK"
_EXIT_WORDS = ("exit", "quit", ":q")


def _stderr(line: str) -> None:
    click.echo(line, err=True)


@click.group("amqp", invoke_without_command=True, short_help="RabbitMQ's admin shell.")
@click.pass_context
def amqp_group(ctx: click.Context) -> None:
    """AMQP administration shell for RabbitMQ: declare, bind, delete and purge queues and
    exchanges, publish, get and ack messages. With no command, starts the shell (repl)."""
    if isinstance(ctx.obj, AMQPSession):
        return  # a command typed in the shell: the shell's session
    cli_obj: CLIContext = ctx.obj
    session = AMQPSession(amqp_target(cli_obj.load_app()), _stderr)
    ctx.obj = session
    ctx.call_on_close(session.close)
    if ctx.invoked_subcommand is None:
        run_repl(session)


def _done(retval: Any = None) -> None:
    if retval is not None:
        click.echo(retval if isinstance(retval, str) else pprint.pformat(retval))
    click.echo(OK)


@amqp_group.command("exchange.declare")
@click.argument("exchange")
@click.argument("type")
@click.argument("passive", type=bool, default=False)
@click.argument("durable", type=bool, default=False)
@click.argument("auto_delete", type=bool, default=False)
@click.pass_obj
def exchange_declare(
    session: AMQPSession, exchange: str, type: str, passive: bool, durable: bool,
    auto_delete: bool,
) -> None:  # fmt: skip
    """Declare EXCHANGE of TYPE (direct, topic, fanout, headers)."""
    session.call(lambda channel: channel.exchange_declare(
        exchange, exchange_type=type, passive=passive, durable=durable, auto_delete=auto_delete
    ))  # fmt: skip
    _done()


@amqp_group.command("exchange.delete")
@click.argument("exchange")
@click.argument("if_unused", type=bool, default=False)
@click.pass_obj
def exchange_delete(session: AMQPSession, exchange: str, if_unused: bool) -> None:
    """Delete EXCHANGE (only if no queue is bound to it, with IF_UNUSED)."""
    session.call(lambda channel: channel.exchange_delete(exchange, if_unused=if_unused))
    _done()


@amqp_group.command("queue.bind")
@click.argument("queue")
@click.argument("exchange")
@click.argument("routing_key")
@click.pass_obj
def queue_bind(session: AMQPSession, queue: str, exchange: str, routing_key: str) -> None:
    """Bind QUEUE to EXCHANGE with ROUTING_KEY."""
    session.call(lambda channel: channel.queue_bind(queue, exchange, routing_key=routing_key))
    _done()


@amqp_group.command("queue.declare")
@click.argument("queue")
@click.argument("passive", type=bool, default=False)
@click.argument("durable", type=bool, default=False)
@click.argument("auto_delete", type=bool, default=False)
@click.pass_obj
def queue_declare(
    session: AMQPSession, queue: str, passive: bool, durable: bool, auto_delete: bool
) -> None:
    """Declare QUEUE (with PASSIVE: only check that it exists); print its counts."""
    ok = session.call(lambda channel: channel.queue_declare(
        queue, passive=passive, durable=durable, auto_delete=auto_delete
    ))  # fmt: skip
    assert ok is not None  # not nowait
    _done(f"queue:{ok.queue} messages:{ok.message_count} consumers:{ok.consumer_count}")


@amqp_group.command("queue.delete")
@click.argument("queue")
@click.argument("if_unused", type=bool, default=False)
@click.argument("if_empty", type=bool, default=False)
@click.pass_obj
def queue_delete(session: AMQPSession, queue: str, if_unused: bool, if_empty: bool) -> None:
    """Delete QUEUE and its messages; print how many messages went with it."""
    ok = session.call(
        lambda channel: channel.queue_delete(queue, if_unused=if_unused, if_empty=if_empty)
    )
    assert ok is not None
    _done(f"{ok.message_count} messages deleted.")


@amqp_group.command("queue.purge")
@click.argument("queue")
@click.pass_obj
def queue_purge(session: AMQPSession, queue: str) -> None:
    """Delete the ready messages of QUEUE; print how many."""
    ok = session.call(lambda channel: channel.queue_purge(queue))
    assert ok is not None
    _done(f"{ok.message_count} messages deleted.")


@amqp_group.command("basic.get")
@click.argument("queue")
@click.argument("no_ack", type=bool, default=False)
@click.pass_obj
def basic_get(session: AMQPSession, queue: str, no_ack: bool) -> None:
    """Fetch one message from QUEUE and print it (ack it later with basic.ack, in the
    shell; without NO_ACK it goes back to the queue when the command ends)."""
    message: aiormq.abc.DeliveredMessage = session.call(
        lambda channel: channel.basic_get(queue, no_ack=no_ack)
    )
    _done(dump_message(message))


@amqp_group.command("basic.publish")
@click.argument("msg")
@click.argument("exchange")
@click.argument("routing_key")
@click.argument("mandatory", type=bool, default=False)
@click.argument("immediate", type=bool, default=False)
@click.pass_obj
def basic_publish(
    session: AMQPSession, msg: str, exchange: str, routing_key: str, mandatory: bool,
    immediate: bool,
) -> None:  # fmt: skip
    """Publish MSG (its text, UTF-8) to EXCHANGE ('' for the default one) with ROUTING_KEY."""
    if immediate:
        raise CLIError(
            "IMMEDIATE is not supported by RabbitMQ (since 3.0; it closes the connection): "
            "leave it false, and use a queue with a message TTL to drop what nobody takes"
        )
    session.call(lambda channel: channel.basic_publish(
        msg.encode(), exchange=exchange, routing_key=routing_key, mandatory=mandatory
    ))  # fmt: skip
    _done()


@amqp_group.command("basic.ack")
@click.argument("delivery_tag", type=int)
@click.pass_obj
def basic_ack(session: AMQPSession, delivery_tag: int) -> None:
    """Acknowledge the message of DELIVERY_TAG, fetched by basic.get in this shell."""
    session.call(lambda channel: channel.basic_ack(delivery_tag))
    _done()


@amqp_group.command("repl")
@click.pass_obj
def repl_command(session: AMQPSession) -> None:
    """Read commands from a prompt, over one connection ('help' lists them, 'exit' ends)."""
    run_repl(session)


def run_repl(session: AMQPSession) -> None:
    """The shell: one command per line, until ``exit`` or the end of input."""
    interactive = sys.stdin.isatty()
    while True:
        try:
            line = input("amqp> " if interactive else "")
        except EOFError:
            break
        except KeyboardInterrupt:
            click.echo()
            continue
        try:
            words = shlex.split(line)
        except ValueError as exc:
            _stderr(f"Error: {exc}")
            continue
        if not words:
            continue
        if words[0] in _EXIT_WORDS:
            break
        run_line(session, words)


def run_line(session: AMQPSession, words: list[str]) -> None:
    """Run one shell command; its error is printed and the shell goes on."""
    name, args = words[0], words[1:]
    command = amqp_group.commands.get(name)
    if name in ("help", "?") or command is None or command is repl_command:
        if command is None and name not in ("help", "?"):
            _stderr(f"Error: no command {name!r}")
        click.echo("Commands: " + ", ".join(c for c in amqp_group.commands if c != "repl"))
        click.echo("Type 'COMMAND --help' for its arguments, 'exit' to leave.")
        return
    try:
        command.main(args, prog_name=name, standalone_mode=False, obj=session)
    except click.exceptions.Exit:
        pass  # --help
    except click.ClickException as exc:
        exc.show()
    except click.Abort:
        _stderr("Aborted!")


__all__ = ["amqp_group", "run_line", "run_repl"]
