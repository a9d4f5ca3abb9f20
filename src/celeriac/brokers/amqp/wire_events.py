"""Events and remote control where the wire format's own tools look for them.

With ``wire_format = "celery"``: events go to Celery's ``celeryev`` topic exchange,
declared as Celery declares it (durable), each event published alone, routed by its type,
transient and unconfirmed, as a Celery worker sends it (a monitor that is not listening
misses it, as with Celery). Commands come from the fanout exchange ``celery.pidbox``
(not durable, as kombu declares it) into the worker's own queue
``<hostname>.celery.pidbox`` (exclusive: it goes with the worker's connection; messages
kept 300 s, as Celery's ``control_queue_ttl``); replies go to the exchange the command
names (``reply.celery.pidbox``, direct, not durable).

Every coroutine here runs on the broker's I/O loop. Engine helper: imports aiormq and the
amqp engine's own modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiormq import spec
from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp.channel import AmqpSubscription, Channels
from celeriac.brokers.amqp.io import IOThread
from celeriac.brokers.amqp.link import Link
from celeriac.brokers.base import Topic
from celeriac.messages.wire import WireFormat, WireParts

TRANSIENT = 1
COMMANDS_KEPT_MS = 300_000  # Celery's control_queue_ttl


class WireEvents:
    def __init__(self, link: Link, wire_format: WireFormat) -> None:
        self.link, self.wire_format = link, wire_format
        # The connection generations the exchanges were declared on.
        self._declared = self._replies_declared = self._commands_declared = -1

    async def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        exchange = self.wire_format.events_exchange
        assert exchange is not None
        channel = await self.link.channel("wire-events")
        with self.link.guard():
            if self._declared != self.link.generation:
                await channel.exchange_declare(exchange, exchange_type="topic", durable=True)
                self._declared = self.link.generation
            for event in events:
                key, parts = self.wire_format.event_parts(event)
                await channel.basic_publish(
                    parts.body, exchange=exchange, routing_key=key, properties=_transient(parts)
                )

    async def command(self, parts: WireParts) -> None:
        exchange = self.wire_format.control_exchange
        assert exchange is not None
        channel = await self.link.channel("wire-events")
        with self.link.guard():
            if self._commands_declared != self.link.generation:
                await channel.exchange_declare(exchange, exchange_type="fanout", durable=False)
                self._commands_declared = self.link.generation
            await channel.basic_publish(
                parts.body, exchange=exchange, routing_key="", properties=_transient(parts)
            )

    async def reply(self, exchange: str, routing_key: str, parts: WireParts) -> None:
        channel = await self.link.channel("wire-events")
        with self.link.guard():
            if self._replies_declared != self.link.generation:
                await channel.exchange_declare(exchange, exchange_type="direct", durable=False)
                self._replies_declared = self.link.generation
            await channel.basic_publish(
                parts.body, exchange=exchange, routing_key=routing_key, properties=_transient(parts)
            )


def _transient(parts: WireParts) -> spec.Basic.Properties:
    given = parts.properties
    return spec.Basic.Properties(
        content_type=given.get("content_type"),
        content_encoding=given.get("content_encoding"),
        headers=dict(parts.headers),
        delivery_mode=TRANSIENT,
    )


class WireControlSubscription(AmqpSubscription):
    """The commands of the wire format's mailbox, from this worker's own queue there;
    after a lost connection the queue is declared and consumed again."""

    def __init__(self, io: IOThread, channels: Channels, exchange: str, hostname: str) -> None:
        super().__init__(io, channels, Topic(exchange), history=False)
        self.exchange, self.queue = exchange, f"{hostname}.{exchange}"

    async def _consume(self, channel: Any) -> None:
        await channel.exchange_declare(self.exchange, exchange_type="fanout", durable=False)
        arguments = {"x-message-ttl": COMMANDS_KEPT_MS}
        await channel.queue_declare(
            self.queue, exclusive=True, auto_delete=True, arguments=arguments
        )
        await channel.queue_bind(self.queue, self.exchange, "")

        async def heard(message: DeliveredMessage) -> None:
            self.deliver(bytes(message.body))

        await channel.basic_consume(self.queue, heard, no_ack=True)
