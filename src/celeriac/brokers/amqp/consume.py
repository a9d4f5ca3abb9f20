"""Fetching, leases, fencing and settling on RabbitMQ, on the broker's I/O loop.

A fetch takes messages with ``basic.get``, queue after queue, up to exactly the free
slots it was asked for; only when every queue is empty does it wait, with a consumer per
queue (prefetch 1 each) that it cancels as soon as anything arrives, so no message sits
in a worker that has no slot for it. Each hand-out holds a lease, a timer on this loop:
``extend`` renews it; when it runs out the message is taken back (published again with
its delivery counted, or dead-lettered at the limit, then acked). A delivery whose lease
ended, or whose channel died, is fenced: settling it returns False and touches nothing,
so an ack never reaches a channel other than the one the message came on.

Counting: each copy carries the hand-outs before it (``x-celeriac-deliveries``). A copy
that RabbitMQ delivers again (``redelivered``, or a quorum queue's ``x-delivery-count``)
was lost with a connection or channel: it is first published again with that loss counted
(or dead-lettered at the limit), so a message that kills its worker stops at the limit.
Engine helper: imports aiormq, ``brokers.base`` and the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiormq import spec
from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.link import Channel, Link
from celeriac.brokers.amqp.publish import Copy, Publisher, dead_copy, ready_copy
from celeriac.brokers.base import Broker, DeadLetterReason, Delivery
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.brokers.amqp")


@dataclass(eq=False)
class _Held:
    delivery: Delivery
    channel: Channel
    tag: int
    timer: asyncio.TimerHandle | None = None


@dataclass(eq=False)
class _Arrived:
    """A message a waiting consumer received and no fetch has handed out yet."""

    queue: str
    message: DeliveredMessage
    channel: Channel


def _int(value: Any, default: int = 0) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class Consumption:
    """The consumer side of one broker: held deliveries, their leases, the stash."""

    def __init__(
        self,
        broker: Broker,
        link: Link,
        publisher: Publisher,
    ) -> None:
        self.broker = broker
        self.link = link
        self.publisher = publisher
        self._held: dict[str, _Held] = {}
        self._stash: list[_Arrived] = []
        self._rotation = 0
        self._qos_for: Channel | None = None

    @property
    def lease(self) -> float:
        return self.broker.lease_seconds

    @property
    def limit(self) -> int:
        return self.broker.delivery_limit

    # -- fetching -------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = list(dict.fromkeys(queues))
        if limit < 1 or not names:
            return []
        start = self._rotation % len(names)
        self._rotation += 1
        names = names[start:] + names[:start]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        while True:
            try:
                taken = await self._take(names, limit)
                if taken or loop.time() >= deadline:
                    return taken
                await self._wait(names, deadline - loop.time())
            except BrokerConnectionError as exc:
                if loop.time() >= deadline:
                    return []
                logger.warning("%s; retrying", exc)
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))  # back off

    async def _channel(self) -> Channel:
        channel = await self.link.channel("consume")
        if self._qos_for is not channel:  # a new channel: one unacked message per consumer
            with self.link.guard():
                await channel.basic_qos(prefetch_count=1, global_=False)
            self._qos_for = channel
        return channel

    async def _take(self, names: list[str], limit: int) -> list[Delivery]:
        channel = await self._channel()
        for name in names:
            await self.publisher.declare_queue(name)
        taken: list[Delivery] = []
        for arrived in list(self._stash):  # received by a waiting consumer: first in line
            if len(taken) >= limit:
                break
            if arrived.queue in names:
                self._stash.remove(arrived)
                await self._keep(taken, arrived.queue, arrived.message, arrived.channel)
        empty: set[str] = set()
        while len(taken) < limit and len(empty) < len(names):
            for name in names:  # one per queue per round: no queue starves another
                if name in empty or len(taken) >= limit:
                    continue
                with self.link.guard():
                    message = await channel.basic_get(name, no_ack=False)
                if isinstance(message.delivery, spec.Basic.GetEmpty):
                    empty.add(name)
                else:
                    await self._keep(taken, name, message, channel)
        return taken

    async def _keep(
        self, taken: list[Delivery], queue: str, message: DeliveredMessage, channel: Channel
    ) -> None:
        if channel.is_closed:
            return  # its channel died: RabbitMQ has put it back already
        delivery = await self._intake(queue, message, channel)
        if delivery is not None:
            taken.append(delivery)

    async def _wait(self, names: list[str], remaining: float) -> None:
        """Consume until one message arrives (or ``remaining`` runs out), then cancel."""
        channel = await self._channel()
        arrived = asyncio.Event()
        tags: list[str] = []

        def receiver(queue: str) -> Any:
            async def receive(message: DeliveredMessage) -> None:
                self._stash.append(_Arrived(queue, message, channel))
                arrived.set()

            return receive

        try:
            for name in names:
                with self.link.guard():
                    ok = await channel.basic_consume(name, receiver(name), no_ack=False)
                assert ok.consumer_tag is not None
                tags.append(ok.consumer_tag)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(arrived.wait(), remaining)
        finally:
            for tag in tags:
                with contextlib.suppress(Exception):  # a dead channel has no consumers left
                    await channel.basic_cancel(tag)

    async def _intake(
        self, queue: str, message: DeliveredMessage, channel: Channel
    ) -> Delivery | None:
        """A received copy becomes a leased ``Delivery``, unless it was lost before."""
        properties = message.header.properties
        headers = properties.headers or {}
        message_id = _text(
            headers.get(t.H_ID) or properties.correlation_id or properties.message_id or ""
        )
        before = max(0, _int(headers.get(t.H_DELIVERIES)))
        priority = min(max(_int(properties.priority), 0), t.MAX_PRIORITY)
        returned = headers.get("x-delivery-count")  # quorum queues count returns themselves
        lost = _int(returned) if returned is not None else int(bool(message.redelivered))
        body = bytes(message.body)
        tag = message.delivery_tag
        assert tag is not None
        if lost > 0:
            count = before + lost
            if count >= self.limit:
                detail = (
                    f"handed out {count} times without an outcome (the connection or channel "
                    f"holding it was lost; delivery_limit={self.limit})"
                )
                reason = DeadLetterReason.DELIVERY_LIMIT.value
                names = self.publisher.names
                copy: Copy = dead_copy(
                    names, queue, body, message_id, priority, reason, detail, count
                )
            else:
                copy = ready_copy(queue, body, message_id, priority, count)
            await self.publisher.publish([copy])
            with self.link.guard():
                await channel.basic_ack(tag)
            return None
        token = uuid.uuid4().hex
        delivery = Delivery(self.broker, queue, body, message_id, before + 1, priority, token)
        held = _Held(delivery, channel, tag)
        self._held[token] = held
        self._arm(held)
        return delivery

    # -- leases ---------------------------------------------------------------------------
    def _arm(self, held: _Held) -> None:
        if held.timer is not None:
            held.timer.cancel()
        loop = asyncio.get_running_loop()
        token = held.delivery.token
        held.timer = loop.call_later(self.lease, lambda: loop.create_task(self._expired(token)))

    async def _expired(self, token: str) -> None:
        """A lease ran out: take the message back, counted, or dead-letter it at the limit."""
        held = self._held.pop(token, None)
        if held is None or held.channel.is_closed:
            return
        count = held.delivery.delivery_count
        if count >= self.limit:
            detail = (
                f"lease expired without an outcome on delivery {count} "
                f"(delivery_limit={self.limit})"
            )
            await self._move(held, DeadLetterReason.DELIVERY_LIMIT, detail)
        else:
            await self._move(held, None, str(count))

    async def _move(self, held: _Held, reason: DeadLetterReason | None, detail: str) -> None:
        """Publish ``held`` again (``reason`` None: ``detail`` is its count) or as a dead
        letter, then ack the copy we hold. A crash in between duplicates, never loses."""
        d = held.delivery
        if reason is None:
            copy = ready_copy(d.queue, d.payload, d.message_id, d.priority, int(detail))
        else:
            copy = dead_copy(
                self.publisher.names, d.queue, d.payload, d.message_id, d.priority,
                reason.value, detail, d.delivery_count,
            )  # fmt: skip
        try:
            await self.publisher.publish([copy])
            with self.link.guard():
                await held.channel.basic_ack(held.tag)
        except BrokerConnectionError as exc:
            logger.warning("could not take back %s after its lease: %s", d.message_id, exc)

    def _take_lease(self, delivery: Delivery) -> _Held | None:
        """End ``delivery``'s lease and return what it held; None when it was lost."""
        held = self._held.pop(delivery.token, None)
        if held is None:
            return None
        if held.timer is not None:
            held.timer.cancel()
        if held.channel.is_closed:
            return None  # the channel died: RabbitMQ has given the message to someone
        return held

    async def ack(self, delivery: Delivery) -> bool:
        held = self._take_lease(delivery)
        if held is None:
            return False
        with self.link.guard():
            await held.channel.basic_ack(held.tag)
        return True

    async def requeue(self, delivery: Delivery, count_delivery: bool) -> bool:
        held = self._take_lease(delivery)
        if held is None:
            return False
        count = delivery.delivery_count if count_delivery else delivery.delivery_count - 1
        copy = ready_copy(delivery.queue, delivery.payload, delivery.message_id,
                          delivery.priority, count)  # fmt: skip
        await self.publisher.publish([copy])
        with self.link.guard():
            await held.channel.basic_ack(held.tag)
        return True

    async def dead_letter(self, delivery: Delivery, reason: DeadLetterReason, detail: str) -> bool:
        held = self._take_lease(delivery)
        if held is None:
            return False
        d = delivery
        copy = dead_copy(
            self.publisher.names, d.queue, d.payload, d.message_id, d.priority,
            reason.value, detail, d.delivery_count,
        )  # fmt: skip
        await self.publisher.publish([copy])
        with self.link.guard():
            await held.channel.basic_ack(held.tag)
        return True

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        lost: list[Delivery] = []
        for delivery in deliveries:
            held = self._held.get(delivery.token)
            if held is None or held.channel.is_closed:
                lost.append(delivery)
            else:
                self._arm(held)
        return lost

    async def close(self) -> None:
        """Give back what waiting consumers received but no fetch handed out (uncounted)."""
        stash, self._stash = self._stash, []
        for arrived in stash:
            if arrived.channel.is_closed:
                continue
            await self._intake_back(arrived)
        for held in self._held.values():
            if held.timer is not None:
                held.timer.cancel()
        self._held.clear()

    async def _intake_back(self, arrived: _Arrived) -> None:
        message = arrived.message
        headers = message.header.properties.headers or {}
        if message.redelivered or "x-delivery-count" in headers:
            return  # closing the channel returns it; the next fetch counts it as it must
        with contextlib.suppress(Exception):
            properties = message.header.properties
            copy = ready_copy(
                arrived.queue, bytes(message.body),
                _text(headers.get(t.H_ID) or properties.correlation_id or ""),
                min(max(_int(properties.priority), 0), t.MAX_PRIORITY),
                max(0, _int(headers.get(t.H_DELIVERIES))),
            )  # fmt: skip
            await self.publisher.publish([copy])
            assert message.delivery_tag is not None
            await arrived.channel.basic_ack(message.delivery_tag)
