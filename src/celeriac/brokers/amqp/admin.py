"""Admin verbs on RabbitMQ: queue and delay counts, purges, and the dead-letter queues.

Counts come from passive ``queue.declare`` (ready messages only, as the seam defines).
The delay levels hold every queue's delayed messages: ``delayed_count`` counts them all,
and a purge reads them to drop the queue's (its routing key names it). Dead letters are
read by taking them with ``basic.get`` on a channel of their own and closing it, which
puts every one back in its place; a replay publishes the chosen ones to their queue with
a fresh count, acks them, and closes the channel on the rest.
Engine helper: imports aiormq, ``brokers.base`` and the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiormq.exceptions
from aiormq import spec
from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.fields import number, payload_of, text
from celeriac.brokers.amqp.link import Link
from celeriac.brokers.amqp.publish import Publisher, ready_copy
from celeriac.brokers.amqp.topology import OldLayout
from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.messages.wire import WireFormat

# What RabbitMQ writes in x-death when it dead-letters by itself (a quorum queue's limit).
_REASONS = frozenset(reason.value for reason in DeadLetterReason)
_NATIVE_REASONS = {"delivery_limit": DeadLetterReason.DELIVERY_LIMIT}
# A purge stops waiting for a level's messages when none came for this long: those it
# counted left for a lower level (read next) between the count and the consume.
_MOVED_ON = 0.5
_PURGE_PREFETCH = 65535  # the most AMQP allows; a quorum queue's default is 2000


class Admin:
    def __init__(self, link: Link, publisher: Publisher) -> None:
        self.link = link
        self.publisher = publisher
        # (connection generation, queue): no per-queue levels of the earlier layout.
        self._no_old_levels: set[tuple[int, str]] = set()

    async def _counts(self, names: list[str], purge: bool) -> list[int] | None:
        """Ready counts (or purged counts) of ``names``; None when the first does not exist."""
        async with self.link.scratch() as channel:
            counts: list[int] = []
            try:
                with self.link.guard():
                    for name in names:
                        if purge:
                            purged = await channel.queue_purge(name)
                            counts.append(int(purged.message_count or 0))
                        else:
                            ok = await channel.queue_declare(name, passive=True)
                            counts.append(int(ok.message_count or 0))
            except Exception as exc:
                if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                    return None
                raise
            return counts

    async def queue_length(self, queue: str) -> int:
        counts = await self._counts([queue], purge=False)
        return counts[0] if counts else 0

    def _levels(self) -> list[str]:
        return [self.publisher.names.delay_queue(level) for level in range(t.LEVELS)]

    def _old_levels(self, queue: str) -> list[str]:
        old = OldLayout(self.publisher.names)
        return [old.queue(queue, level) for level in range(t.LEVELS)]

    async def _old_counts(self, queue: str, purge: bool) -> int:
        """``queue``'s messages in the earlier per-queue levels. Once found missing they
        are not asked for again on this connection (each miss is a channel error that
        RabbitMQ logs)."""
        gone = (self.link.generation, queue)
        if gone in self._no_old_levels:
            return 0
        counts = await self._counts(self._old_levels(queue), purge)
        if counts is None:
            self._no_old_levels.add(gone)
        return sum(counts or [])

    async def delayed_count(self, queue: str) -> int:
        """Every queue's messages waiting in the shared levels (RabbitMQ counts a queue's
        messages, not a routing key's), and ``queue``'s in the earlier per-queue layout."""
        shared = await self._counts(self._levels(), purge=False)  # all levels, or none
        return sum(shared or []) + await self._old_counts(queue, purge=False)

    async def purge(self, queue: str) -> int:
        # The delayed ones first: one that falls due meanwhile is then purged as ready.
        delayed = await self._drop_delayed(queue) + await self._old_counts(queue, purge=True)
        ready = await self._counts([queue], purge=True)
        return delayed + sum(ready or [])

    async def _drop_delayed(self, queue: str) -> int:
        """Drop ``queue``'s messages from the shared levels: consume the levels on a
        channel of their own, ack the messages whose routing key names ``queue``, and close
        the channel, which puts back the others in place with their TTLs unchanged. The
        levels are read from the longest down while holding what was read, so no message
        moves into a level already read; one due meanwhile leaves when the purge ends."""
        dropped = 0
        async with self.link.scratch() as channel:
            with self.link.guard():
                await channel.basic_qos(prefetch_count=_PURGE_PREFETCH)
            for level in reversed(self._levels()):
                found = await self._drop_from(channel, level, queue)
                if found is None:  # the levels are declared together: none yet
                    break
                dropped += found
        return dropped

    async def _drop_from(self, channel: Any, level: str, queue: str) -> int | None:
        """Ack ``queue``'s messages among those ``level`` holds; None when it does not
        exist. They are consumed, up to the channel's prefetch, and any beyond it got one
        by one: a quorum queue hands out eight times as many a second to a consumer."""
        try:
            with self.link.guard():
                waiting = int((await channel.queue_declare(level, passive=True)).message_count)
        except Exception as exc:
            if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                return None
            raise
        if not waiting:
            return 0
        seen = dropped = 0
        progress = asyncio.Event()

        async def take(message: DeliveredMessage) -> None:
            nonlocal seen, dropped
            seen += 1
            progress.set()
            key = getattr(message.delivery, "routing_key", None) or ""
            if t.delayed_queue_of(text(key)) == queue:
                assert message.delivery_tag is not None
                await channel.basic_ack(message.delivery_tag)
                dropped += 1

        with self.link.guard():
            consumer = await channel.basic_consume(level, take)
        while seen < waiting:  # what was there when asked, unless it moved on meanwhile
            progress.clear()
            try:
                await asyncio.wait_for(progress.wait(), _MOVED_ON)
            except asyncio.TimeoutError:
                break
        with self.link.guard():
            await channel.basic_cancel(consumer.consumer_tag)
            while seen < waiting:  # past the prefetch
                message = await channel.basic_get(level, no_ack=False)
                if isinstance(message.delivery, spec.Basic.GetEmpty):
                    break
                await take(message)
        return dropped

    async def purge_dead_letters(self, queue: str) -> int:
        counts = await self._counts([self.publisher.names.dead_queue(queue)], purge=True)
        return counts[0] if counts else 0

    async def dead_letters(self, queue: str, limit: int) -> list[DeadLetter]:
        letters: list[DeadLetter] = []
        async with self.link.scratch() as channel:  # closing it puts them all back
            while len(letters) < limit:
                message = await self._get(channel, self.publisher.names.dead_queue(queue))
                if message is None:
                    break
                letters.append(self._letter(queue, message, self.publisher.wire_format))
        return letters

    async def replay(self, queue: str, entry_ids: list[str] | None) -> int:
        wanted = None if entry_ids is None else set(entry_ids)
        replayed = 0
        async with self.link.scratch() as channel:  # closing it puts back the others
            while True:
                message = await self._get(channel, self.publisher.names.dead_queue(queue))
                if message is None:
                    break
                letter = self._letter(queue, message, self.publisher.wire_format)
                if wanted is not None and letter.entry_id not in wanted:
                    continue
                copy = ready_copy(queue, letter.payload, letter.message_id, letter.priority, 0)
                await self.publisher.declare_queue(queue)
                await self.publisher.publish([copy])
                assert message.delivery_tag is not None
                with self.link.guard():
                    await channel.basic_ack(message.delivery_tag)
                replayed += 1
                if wanted is not None and replayed == len(wanted):
                    break
        return replayed

    async def _get(self, channel: Any, name: str) -> DeliveredMessage | None:
        try:
            with self.link.guard():
                message: DeliveredMessage = await channel.basic_get(name, no_ack=False)
        except Exception as exc:
            if isinstance(exc.__cause__, aiormq.exceptions.ChannelNotFoundEntity):
                return None  # no dead-letter queue: no dead letters
            raise
        if isinstance(message.delivery, spec.Basic.GetEmpty):
            return None
        return message

    @staticmethod
    def _letter(queue: str, message: DeliveredMessage, wire_format: WireFormat) -> DeadLetter:
        properties = message.header.properties
        headers = properties.headers if isinstance(properties.headers, dict) else {}
        reason_text = text(headers.get(t.H_REASON) or "")
        detail = text(headers.get(t.H_DETAIL) or "")
        if reason_text in _REASONS:
            reason = DeadLetterReason(reason_text)
        else:  # dead-lettered by RabbitMQ itself
            native = text(headers.get("x-first-death-reason") or "unknown")
            reason = _NATIVE_REASONS.get(native, DeadLetterReason.REJECTED)
            detail = detail or f"dead-lettered by RabbitMQ ({native})"
        count = number(headers.get(t.H_COUNT))
        if count is None:
            count = (number(headers.get(t.H_DELIVERIES)) or 0) + (
                number(headers.get("x-delivery-count")) or 0
            )
        at = (number(headers.get(t.H_DEAD_AT)) or 0) / 1000
        return DeadLetter(
            entry_id=text(properties.message_id or ""),
            queue=queue,
            message_id=text(headers.get(t.H_ID) or properties.correlation_id or ""),
            payload=payload_of(properties, message.body, wire_format),
            reason=reason,
            detail=detail,
            delivery_count=int(count),
            dead_lettered_at=at,
            priority=min(max(number(properties.priority) or 0, 0), t.MAX_PRIORITY),
        )
