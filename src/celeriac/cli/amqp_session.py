"""One AMQP 0.9.1 connection for ``celeriac amqp``: blocking calls over aiormq.

Edge layer (cli), apart from the broker engines on purpose: the admin shell declares,
deletes, publishes and gets exactly what it is told, with none of the engine's queue
layout, leases or confirms policy. A session keeps one connection and one channel on an
event loop of its own, so a ``basic.get`` and the ``basic.ack`` of
its delivery tag, typed one after the other in the shell, share the channel. A command
the broker refuses closes the channel (AMQP's rule); the next command opens a new one.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from celeriac.app.urls import broker_url
from celeriac.cli.base import CLIError
from celeriac.worker.exitcodes import EX_UNAVAILABLE

if TYPE_CHECKING:  # aiormq is the amqp extra's (so is the engine): imported when needed
    import aiormq.abc

    from celeriac.brokers.amqp.params import Target

T = TypeVar("T")

#: Printed when the queue ``basic.get`` reads is empty (Celery's words).
NO_MESSAGE = "No messages in queue. basic.publish something."


class AMQPCommandError(CLIError):
    """The broker refused a command (e.g. a queue that does not exist): status 1."""

    exit_code = 1


class BrokerUnreachable(CLIError):
    """No connection to RabbitMQ: status ``EX_UNAVAILABLE``."""

    exit_code = EX_UNAVAILABLE


def amqp_target(app: Any) -> Target:
    """The app's broker as an AMQP target; a clear refusal for any other broker."""
    url = broker_url(app.conf)
    scheme = str(url).partition("://")[0].lower() if url else ""
    if scheme not in ("amqp", "amqps", "pyamqp"):
        where = f"{scheme}://" if scheme else "the embedded Redis (broker_url is not set)"
        raise CLIError(
            f"'celeriac amqp' is RabbitMQ's admin shell (AMQP 0.9.1), and this app's broker "
            f"is {where}: give an amqp:// broker with -b/--broker ('celeriac purge' works "
            f"on every broker)"
        )
    _aiormq()  # before the engine's package, which needs it
    from celeriac.brokers.amqp.params import parse_targets

    options = app.conf.broker_transport_options or {}
    return parse_targets(str(url), options, app.conf.broker_use_ssl)[0]  # a list's first node


def _aiormq() -> Any:
    """The aiormq module, or a refusal saying which extra brings it."""
    try:
        return importlib.import_module("aiormq")
    except ImportError as exc:
        raise CLIError(
            "'celeriac amqp' needs aiormq, RabbitMQ's client: pip install 'celeriac[amqp]'"
        ) from exc


def dump_message(message: aiormq.abc.DeliveredMessage) -> dict[str, Any] | str:
    """What ``basic.get`` shows: the body, the properties set, and the delivery info."""
    from pamqp.commands import Basic  # aiormq's own dependency

    delivery = message.delivery
    if not isinstance(delivery, Basic.GetOk):
        return NO_MESSAGE
    try:
        body: str | bytes = message.body.decode("utf-8")
    except UnicodeDecodeError:
        body = message.body
    properties = {key: value for key, value in message.header.properties if value}
    return {
        "body": body,
        "properties": properties,
        "delivery_info": {
            "delivery_tag": delivery.delivery_tag,
            "redelivered": delivery.redelivered,
            "exchange": delivery.exchange,
            "routing_key": delivery.routing_key,
            "message_count": delivery.message_count,
        },
    }


class AMQPSession:
    """A connection to ``target`` used one blocking call at a time; close it at the end."""

    def __init__(self, target: Target, say: Callable[[str], None]) -> None:
        self.target = target
        self.say = say  # progress lines (connecting, connected), kept off stdout
        self._driver = _aiormq()
        self._loop = asyncio.new_event_loop()
        self._connection: aiormq.abc.AbstractConnection | None = None
        self._channel: aiormq.abc.AbstractChannel | None = None

    def call(self, method: Callable[[aiormq.abc.AbstractChannel], Awaitable[T]]) -> T:
        """Run ``method(channel)`` on the broker; its refusal raises ``AMQPCommandError``."""
        return self._loop.run_until_complete(self._call(method))

    async def _call(self, method: Callable[[aiormq.abc.AbstractChannel], Awaitable[T]]) -> T:
        channel = await self._open_channel()
        try:
            return await method(channel)
        except self._driver.exceptions.ChannelClosed as exc:
            raise AMQPCommandError(_reason(exc)) from exc
        except (self._driver.exceptions.AMQPConnectionError, ConnectionError) as exc:
            self._connection = self._channel = None  # connect again for the next command
            raise BrokerUnreachable(
                f"lost the connection to {self.target.safe_url}: {exc}"
            ) from exc

    async def _open_channel(self) -> aiormq.abc.AbstractChannel:
        connection = self._connection
        if connection is None or connection.is_closed:
            self.say(f"-> connecting to {self.target.safe_url}.")
            try:
                connection = self._connection = await asyncio.wait_for(
                    self._driver.connect(self.target.url, **self.target.connect_options()),
                    self.target.connect_timeout,
                )
            except (self._driver.exceptions.AMQPError, OSError, asyncio.TimeoutError) as exc:
                raise BrokerUnreachable(
                    f"cannot connect to {self.target.safe_url}: {exc or type(exc).__name__}"
                ) from exc
            self.say("-> connected.")
            self._channel = None
        assert connection is not None
        if self._channel is None or self._channel.is_closed:
            self._channel = await connection.channel(publisher_confirms=False)
        return self._channel

    def close(self) -> None:
        if self._connection is not None and not self._connection.is_closed:
            self._loop.run_until_complete(self._connection.close())
        self._loop.close()


def _reason(exc: BaseException) -> str:
    """``(404, "NOT_FOUND - no queue 'x' in vhost '/'")`` -> the broker's own sentence."""
    args = exc.args
    if len(args) == 2 and isinstance(args[0], int):
        return f"{args[1]} ({args[0]})"
    return str(exc) or type(exc).__name__


__all__ = [
    "NO_MESSAGE",
    "AMQPCommandError",
    "AMQPSession",
    "BrokerUnreachable",
    "amqp_target",
    "dump_message",
]
