"""Revocations on RabbitMQ: one publish on the ``REVOCATIONS`` broadcast topic both records
and announces them.

The broadcast exchange routes each revoke to the stream ``celeriac.revocations`` (the
record: workers that start later read it from the beginning, non-destructively, so any
number can read at once) and to the queue of every running subscriber (``channel``).
``revoked_ids`` reads the stream up to a marker it publishes itself, so it has seen every
revoke confirmed before it. A stream keeps no server clock a client can read, so a record's
end time is the revoking process's clock plus the ttl. The message is
``messages.revocation``'s. Engine helper: imports aiormq, ``brokers.base``, ``messages`` and
the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.link import Link
from celeriac.brokers.amqp.publish import Copy, Publisher
from celeriac.brokers.base import REVOCATIONS
from celeriac.exceptions import BrokerError
from celeriac.messages import revocation

READ_TIMEOUT = 10.0  # seconds to read the stream up to our marker


class Revocations:
    """Record and read revocations; every coroutine runs on the I/O loop."""

    def __init__(self, link: Link, publisher: Publisher) -> None:
        self.link = link
        self.publisher = publisher

    async def revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        await self.publisher.declare_control(REVOCATIONS.name)
        payload = revocation.encode(ids, ttl, terminate, signal)
        broadcast = self.publisher.names.broadcast
        # Mandatory, as every Publisher copy: the stream is always bound, so it routes.
        copy = Copy(
            broadcast, REVOCATIONS.name, payload, uuid.uuid4().hex, 0, {}, broadcast, message=False
        )
        await self.publisher.publish([copy])

    async def revoked(self) -> dict[str, float]:
        """Every live revocation in the stream: task id -> end (this process's clock)."""
        await self.publisher.declare_control(REVOCATIONS.name)
        stream = self.publisher.names.revocations
        marker = uuid.uuid4().hex
        ends: dict[str, float] = {}
        reached = asyncio.Event()
        async with self.link.scratch() as channel:
            with self.link.guard():
                await channel.basic_qos(prefetch_count=1000)

            async def receive(message: DeliveredMessage) -> None:
                headers = message.header.properties.headers or {}
                if headers.get(t.H_ID) == marker:
                    reached.set()
                else:
                    notice = revocation.decode(bytes(message.body))
                    if notice is not None:
                        for task_id in notice.task_ids:
                            ends[task_id] = max(ends.get(task_id, 0.0), notice.ends)
                assert message.delivery_tag is not None
                with contextlib.suppress(Exception):
                    await channel.basic_ack(message.delivery_tag)

            with self.link.guard():
                await channel.basic_consume(
                    stream, receive, no_ack=False, arguments={"x-stream-offset": "first"}
                )
            copy = Copy("", stream, b"", marker, 0, {t.H_ID: marker}, stream, message=False)
            await self.publisher.publish([copy])
            try:
                await asyncio.wait_for(reached.wait(), READ_TIMEOUT)
            except asyncio.TimeoutError:
                raise BrokerError(
                    f"could not read the revocations stream {stream!r} within {READ_TIMEOUT:.0f} s"
                ) from None
        now = time.time()
        return {task_id: end for task_id, end in ends.items() if end > now}
