"""The channel on RabbitMQ: broadcast topics through a direct exchange, stream topics through
the events topic exchange into a RabbitMQ stream.

- Broadcast: a publish goes to ``N.broadcast`` (direct) with the topic name as routing key;
  each subscriber binds an exclusive, auto-delete, server-named queue with that key, so
  every one gets a copy and the queue goes with its subscriber. One exchange serves every
  topic (a fanout per topic would mean an exchange per reply topic, left behind).
- Stream: a publish goes to ``N.events`` (topic) with the topic name as routing key, bound
  to the stream ``N.stream.<topic>`` (``x-max-length-bytes`` = keep KiB). Subscribers read
  the stream non-destructively from ``next`` (or ``first`` for the history) and resume after
  the last offset they handed out.

Publishes are confirmed, not mandatory: a broadcast nobody hears is dropped, as on Redis.
Every coroutine here runs on the broker's I/O loop. Engine helper: imports aiormq,
``brokers.base`` and the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiormq import spec
from aiormq.abc import DeliveredMessage

from celeriac._futures import cancel_and_wait
from celeriac.brokers.amqp.io import IOThread
from celeriac.brokers.amqp.link import DOWN, Link
from celeriac.brokers.amqp.topology import Names
from celeriac.brokers.base import ChannelKind, Subscription, Topic
from celeriac.exceptions import BrokerError

logger = logging.getLogger("celeriac.brokers.amqp")
MAX_PAUSE = 5.0
PREFETCH = 500  # stream entries in flight to one subscriber


def stream_arguments(topic: Topic) -> dict[str, Any]:
    size = topic.keep * 1024
    # Retention drops whole segments, so a segment must be well below the cap.
    return {"x-queue-type": "stream", "x-max-length-bytes": size,
            "x-stream-max-segment-size-bytes": max(16_384, size // 4)}  # fmt: skip


class Channels:
    """Declares what topics need and publishes on them, once per connection."""

    def __init__(self, link: Link, names: Names) -> None:
        self.link, self.names = link, names
        self._declared: set[tuple[int, str]] = set()  # (connection generation, what)

    async def declare(self, topic: Topic) -> None:
        channel = await self.link.channel("admin")  # (first: it may connect anew)
        what = topic.name if topic.kind is ChannelKind.STREAM else ""
        if (self.link.generation, what) in self._declared:
            return
        names = self.names
        with self.link.guard():
            await channel.exchange_declare(names.broadcast, exchange_type="direct", durable=True)
            await channel.exchange_declare(names.events, exchange_type="topic", durable=True)
            if topic.kind is ChannelKind.STREAM:
                stream = names.stream_queue(topic.name)
                await channel.queue_declare(stream, durable=True, arguments=stream_arguments(topic))
                await channel.queue_bind(stream, names.events, topic.name)
        self._declared.add((self.link.generation, what))

    def exchange(self, topic: Topic) -> str:
        return self.names.events if topic.kind is ChannelKind.STREAM else self.names.broadcast

    async def publish(self, topic: Topic, payload: bytes, timeout: float | None) -> None:
        await self.declare(topic)
        channel = await self.link.channel("publish", confirms=True)
        with self.link.guard():
            confirmation = await channel.basic_publish(
                payload,
                exchange=self.exchange(topic),
                routing_key=topic.name,
                properties=spec.Basic.Properties(delivery_mode=2),
                timeout=timeout,
            )
        if not isinstance(confirmation, spec.Basic.Ack):
            raise BrokerError(f"RabbitMQ did not confirm a publish on topic {topic.name!r}")


class AmqpSubscription(Subscription):
    """One subscriber, followed by a task on the I/O loop; after a lost connection it
    subscribes again (a stream: after the last offset handed out) and says it is live."""

    def __init__(self, io: IOThread, channels: Channels, topic: Topic, history: bool) -> None:
        super().__init__(topic)  # on the caller's loop: payloads are handed over there
        self._io, self._channels = io, channels
        self._offset: Any = "first" if history else "next"
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._io.run_async(self._start())

    async def _start(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(ready), name=f"celeriac-{self.topic.name}")
        try:
            await ready
        except BaseException:  # refused, or the caller was stopped: follow nothing
            await self._end()
            raise

    async def _stop(self) -> None:
        await self._io.run_async(self._end())

    async def _end(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _consume(self, channel: Any) -> None:
        topic, names = self.topic, self._channels.names
        if topic.kind is ChannelKind.BROADCAST:
            declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
            await channel.queue_bind(declared.queue, names.broadcast, topic.name)

            async def heard(message: DeliveredMessage) -> None:
                self.deliver(bytes(message.body))

            await channel.basic_consume(declared.queue, heard, no_ack=True)
            return

        async def read(message: DeliveredMessage) -> None:
            self.deliver(bytes(message.body))
            offset = (message.header.properties.headers or {}).get("x-stream-offset")
            if isinstance(offset, int):
                self._offset = offset + 1  # where to resume after an outage
            assert message.delivery_tag is not None
            with contextlib.suppress(Exception):  # (acks only grant credit on a stream)
                await channel.basic_ack(message.delivery_tag)

        await channel.basic_qos(prefetch_count=PREFETCH)
        arguments = {"x-stream-offset": self._offset}
        await channel.basic_consume(names.stream_queue(topic.name), read, arguments=arguments)

    async def _follow(self, ready: asyncio.Future[None]) -> None:
        link, pause, first = self._channels.link, 0.1, True
        while True:
            channel = None
            try:
                await self._channels.declare(self.topic)
                connection = await link.connection()
                with link.guard():
                    channel = await connection.channel()
                    await self._consume(channel)
                if first:
                    first = False
                    ready.set_result(None)
                else:
                    self.resumed()
                pause = 0.1
                await asyncio.wait([channel.closing])
            except asyncio.CancelledError:
                if channel is not None:
                    with contextlib.suppress(Exception):
                        await channel.close()
                raise
            except Exception as exc:
                if first:  # the caller is waiting: hand it the error, never leave it hanging
                    ready.set_exception(exc)
                    return
                if not isinstance(exc, (BrokerError, *DOWN)):
                    logger.exception("topic %s: unexpected error", self.topic.name)
            if not first:
                self.lost(link.down(ConnectionError("the subscription's channel closed")))
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
