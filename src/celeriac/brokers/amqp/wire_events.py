"""Events where the wire format's own monitors read them: with ``wire_format = "celery"``,
Celery's ``celeryev`` topic exchange, declared as Celery declares it (durable), each event
published alone, routed by its type, transient and unconfirmed, as a Celery worker sends
it. A monitor that is not listening misses it, as with Celery.

Every coroutine here runs on the broker's I/O loop. Engine helper: imports aiormq and the
amqp engine's own modules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from aiormq import spec

from celeriac.brokers.amqp.link import Link
from celeriac.messages.wire import WireFormat

TRANSIENT = 1


class WireEvents:
    def __init__(self, link: Link, wire_format: WireFormat) -> None:
        self.link, self.wire_format = link, wire_format
        self._declared = -1  # the connection generation the exchange was declared on

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
                given = parts.properties
                await channel.basic_publish(
                    parts.body,
                    exchange=exchange,
                    routing_key=key,
                    properties=spec.Basic.Properties(
                        content_type=given.get("content_type"),
                        content_encoding=given.get("content_encoding"),
                        headers=dict(parts.headers),
                        delivery_mode=TRANSIENT,
                    ),
                )
