"""Publishing with publisher confirms and ``mandatory``, and declaring the topology it needs.

Every publish is persistent, confirmed, and ``mandatory``: it returns once RabbitMQ has the
message (on disk for a classic durable queue, on a majority for a quorum queue), and a
message no queue would take (unroutable) or that RabbitMQ refused (nack) raises
``BrokerError``. Queues and exchanges are declared once per connection, before first use.
A copy's payload goes out as the broker's wire format splits it (``WireFormat.split``):
its body, with the format's headers and properties beside the engine's own.
Engine helper: imports aiormq, ``brokers.base``, ``messages.wire`` and the amqp engine's
own modules.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiormq.exceptions
from aiormq import spec

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.link import Link
from celeriac.brokers.amqp.params import QueueTypes
from celeriac.brokers.amqp.pipeline import surviving_outages
from celeriac.brokers.base import DeadLetter, DeadLetterReason
from celeriac.exceptions import BrokerConnectionError, BrokerError
from celeriac.messages.wire import NATIVE, WireFormat, WireParts

logger = logging.getLogger("celeriac.brokers.amqp")
_NACK_PATIENCE = 30.0  # seconds a nacked copy is sent again, when the call sets no timeout
_FIRST_NACK_PAUSE, _LAST_NACK_PAUSE = 0.05, 1.0
#: The basic properties a wire format may set; the engine sets ``delivery_mode``,
#: ``priority`` and ``message_id`` itself, and ``correlation_id`` when the format does not.
FORMAT_PROPERTIES = frozenset(
    {"content_type", "content_encoding", "correlation_id", "reply_to", "expiration",
     "timestamp", "message_type", "user_id", "app_id"}
)  # fmt: skip


class _CopyIds:
    """AMQP message ids unique per copy: a random prefix of this process's (drawn again in
    a forked child) and a counter, 32 hex digits as a UUID's. No system call per message,
    which ``uuid4`` makes for its randomness."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        self._prefix = uuid.uuid4().hex[:16]
        self._counter = itertools.count()

    def new(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


_copy_ids = _CopyIds()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_copy_ids.reseed)


@dataclass(frozen=True, slots=True)
class Copy:
    """One message to publish: where to, the bytes, and the headers celeriac reads back."""

    exchange: str
    routing_key: str
    payload: bytes
    message_id: str
    priority: int
    headers: Mapping[str, Any]
    queue: str  # the celeriac queue it belongs to, for the error message
    persistent: bool = True  # delivery mode 2; False: 1 (transient), as first published
    # The AMQP message_id of this copy (a dead letter's entry id): unique per copy.
    copy_id: str = field(default_factory=lambda: _copy_ids.new())
    message: bool = True  # a task message in the wire format (False: a record of ours)


def ready_copy(
    queue: str,
    payload: bytes,
    message_id: str,
    priority: int,
    deliveries: int,
    persistent: bool = True,
    route: tuple[str, str] | None = None,
) -> Copy:
    """A copy for ``queue`` itself (through the default exchange), or through ``route``
    (exchange, routing key): a new message to a shared queue goes where kombu sends it."""
    exchange, key = ("", queue) if route is None else route
    headers = {t.H_ID: message_id, t.H_DELIVERIES: deliveries}
    return Copy(exchange, key, payload, message_id, priority, headers, queue, persistent)


def delayed_copy(
    names: t.Names,
    queue: str,
    payload: bytes,
    message_id: str,
    priority: int,
    delay: float,
    persistent: bool = True,
) -> Copy:
    exchange, key = names.delay_route(t.delay_units(delay), queue)
    headers = {t.H_ID: message_id, t.H_DELIVERIES: 0}
    return Copy(exchange, key, payload, message_id, priority, headers, queue, persistent)


def dead_copy(
    names: t.Names,
    queue: str,
    payload: bytes,
    message_id: str,
    priority: int,
    reason: str,
    detail: str,
    count: int,
) -> Copy:
    headers = {
        t.H_ID: message_id,
        t.H_REASON: reason,
        t.H_DETAIL: detail,
        t.H_COUNT: count,
        t.H_DEAD_AT: int(time.time() * 1000),
    }
    return Copy("", names.dead_queue(queue), payload, message_id, priority, headers, queue)


def dead_letter_of(copy: Copy) -> DeadLetter:
    """The dead letter a ``dead_copy`` becomes once published, as ``dead_letters`` lists it."""
    headers = copy.headers
    return DeadLetter(
        entry_id=copy.copy_id,
        queue=copy.queue,
        message_id=copy.message_id,
        payload=copy.payload,
        reason=DeadLetterReason(headers[t.H_REASON]),
        detail=str(headers[t.H_DETAIL]),
        delivery_count=int(headers[t.H_COUNT]),
        dead_lettered_at=int(headers[t.H_DEAD_AT]) / 1000,
        priority=copy.priority,
    )


class Publisher:
    """Confirmed publishing and topology declaration, on the broker's I/O loop."""

    def __init__(
        self,
        link: Link,
        names: t.Names,
        types: QueueTypes,
        delivery_limit: int,
        retention: str,
        max_priority: int | None = t.MAX_PRIORITY,
        wire_format: WireFormat = NATIVE,
        shared: t.SharedQueues | None = None,
    ) -> None:
        self.link = link
        self.names = names
        self.wire_format = wire_format  # splits each payload into the copy's parts
        self.shared = shared  # ready queues declared as kombu declares them (None: ours)
        self.types = types  # each queue's type: the app's, one made on first use, the delays'
        self.max_priority = max_priority  # x-max-priority of classic ready queues
        self.delivery_limit = delivery_limit
        self.retention = retention
        self._declared: set[tuple[int, str]] = set()  # (connection generation, what)
        self._warned = False  # about classic delay queues: once

    # -- topology -------------------------------------------------------------------------
    def priorities_on(self, queue: str) -> bool:
        """Whether ``queue`` serves by priority: a classic queue with ``x-max-priority``."""
        return self.types.of(queue) == "classic" and bool(self.max_priority)

    def route(self, queue: str) -> tuple[str, str]:
        """Where a new message for ``queue`` is published: (exchange, routing key)."""
        return ("", queue) if self.shared is None else self.shared.route(queue)

    def _fresh(self, what: str) -> bool:
        return (self.link.generation, what) not in self._declared

    def _done(self, what: str) -> None:
        self._declared.add((self.link.generation, what))

    def forget(self, queue: str) -> None:
        forgotten = (queue, f"delay:{queue}", "levels")
        self._declared = {d for d in self._declared if d[1] not in forgotten}

    async def declare_queue(self, queue: str) -> None:
        """The ready queue and its dead-letter queue."""
        t.check_queue_name(queue)
        channel = await self.link.channel("admin")
        if not self._fresh(queue):
            return
        kind = self.types.of(queue)
        with self.link.guard():
            dead = self.names.dead_queue(queue)
            await channel.queue_declare(dead, durable=True, arguments=t.dead_arguments(kind))
            if self.shared is None:
                arguments = t.ready_arguments(dead, kind, self.delivery_limit, self.max_priority)
                await channel.queue_declare(queue, durable=True, arguments=arguments)
            else:
                await self._declare_shared(channel, queue, self.shared.of(queue))
        self._done(queue)

    @staticmethod
    async def _declare_shared(channel: Any, queue: str, binding: t.Binding) -> None:
        """``queue``, its exchange and their binding, each as kombu declares it."""
        if binding.exchange:
            await channel.exchange_declare(
                binding.exchange, exchange_type=binding.exchange_type, durable=True
            )
        await channel.queue_declare(queue, durable=True, arguments=dict(binding.arguments))
        if binding.exchange:
            await channel.queue_bind(queue, binding.exchange, binding.routing_key)

    async def _declare_levels(self) -> None:
        """The 32 level queues every ready queue shares, and the exchanges that route a
        delay down them."""
        if not self._fresh("levels"):
            return
        channel = await self.link.channel("admin")
        names = self.names
        with self.link.guard():
            for level in range(-1, t.LEVELS):
                await channel.exchange_declare(
                    names.delay_exchange(level), exchange_type="topic", durable=True
                )
            for level in range(t.LEVELS):
                destination, key = names.level_binding(level)
                await channel.exchange_bind(destination, names.delay_exchange(level), key)
        kind = await self._level_type()
        with self.link.guard():
            for level in range(t.LEVELS):
                name = names.delay_queue(level)
                arguments = t.delay_arguments(level, names.delay_exchange(level - 1), kind)
                await channel.queue_declare(name, durable=True, arguments=arguments)
                await channel.queue_bind(
                    name, names.delay_exchange(level), t.level_queue_binding(level)
                )
        self._done("levels")

    async def _level_type(self) -> str:
        """The level queues' type: the one the broker was given; else quorum where the
        server has it for delays (``QueueTypes.delays_on``), unless they already exist as
        classic queues (declared on an older server), which they then stay."""
        if self.types.delay is not None:
            return self.types.delay
        version = await self.link.server_version()
        kind = self.types.delays_on(version)
        if kind == "classic":
            shown = ".".join(map(str, version)) if version else "of an unknown version"
            self._warn_classic_delays(
                f"RabbitMQ {shown} has no quorum queues with message TTL and at-least-once "
                f"dead-lettering, so the delay queues are classic",
                "Upgrade RabbitMQ to 3.10 or later: the delay queues are then quorum",
            )
        elif not await self._level_accepts(kind):
            kind = "classic"
            self._warn_classic_delays(
                f"the delay queues {self.names.delay_queue(0)[:-1]}* exist as classic queues "
                f"(declared on an older RabbitMQ, or with broker_native_delayed_delivery_"
                f"queue_type = 'classic'), so they stay classic",
                "To make them quorum, delete them while no delayed message waits in them "
                "(see 'Classic or quorum' in the RabbitMQ broker's documentation): they "
                "are declared again as quorum",
            )
        return kind

    async def _level_accepts(self, kind: str) -> bool:
        """Whether level 0 is (or now is, declared) a queue of type ``kind``: RabbitMQ
        refuses a declaration whose arguments differ, closing the channel, so it is
        tried on a channel of its own."""
        names = self.names
        arguments = t.delay_arguments(0, names.delay_exchange(-1), kind)
        async with self.link.scratch() as channel:
            try:
                with self.link.guard():
                    await channel.queue_declare(
                        names.delay_queue(0), durable=True, arguments=arguments
                    )
            except BrokerError as exc:
                if isinstance(exc.__cause__, aiormq.exceptions.ChannelPreconditionFailed):
                    return False
                raise
        return True

    def _warn_classic_delays(self, why: str, fix: str) -> None:
        if self._warned:
            return
        self._warned = True
        logger.warning(
            "%s: a RabbitMQ crash can lose a countdown, eta or retry moving between them "
            "(a classic queue dead-letters at most once). %s; or set broker_native_delayed_"
            "delivery_queue_type = 'classic' to accept the risk and silence this warning.",
            why,
            fix,
        )

    async def declare_delays(self, queue: str) -> None:
        """The shared delay levels, and ``queue``'s binding from their last exchange, so
        that every delay for ``queue`` ends in it."""
        await self.declare_queue(queue)
        await self._declare_levels()
        if not self._fresh(f"delay:{queue}"):
            return
        channel = await self.link.channel("admin")
        with self.link.guard():
            await channel.queue_bind(queue, self.names.deliver, t.deliver_binding(queue))
        self._done(f"delay:{queue}")

    async def declare_control(self, topic: str) -> None:
        """The broadcast exchange and the revocations stream, bound to it by ``topic``."""
        if not self._fresh("control"):
            return
        channel = await self.link.channel("admin")
        names = self.names
        with self.link.guard():
            await channel.exchange_declare(names.broadcast, exchange_type="direct", durable=True)
            await channel.queue_declare(
                names.revocations, durable=True, arguments=t.revocation_arguments(self.retention)
            )
            await channel.queue_bind(names.revocations, names.broadcast, topic)
        self._done("control")

    # -- publishing -----------------------------------------------------------------------
    async def publish(self, copies: Sequence[Copy], timeout: float | None = None) -> None:
        """Publish all ``copies`` pipelined on the confirm channel; return once all confirmed."""
        channel = await self.link.channel("publish", confirms=True)
        sends = [self._send(channel, copy, timeout) for copy in copies]
        results = await asyncio.gather(*sends, return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def send_ahead(self, copies: Sequence[Copy], timeout: float) -> list[Any]:
        """Start publishing ``copies``, in order, and return their sends unawaited: each
        ends once RabbitMQ confirmed its copy, sent again on a new connection if the old
        one died first, for up to ``timeout`` seconds. How long a confirm may take is the
        caller's to bound (``Pipeline``: one watch for every send, not a timer each)."""
        channel = await self.link.channel("publish", confirms=True)
        # A task runs to the channel's lock before yielding: made in order, sent in order.
        return [asyncio.ensure_future(self._send_surviving(channel, c, timeout)) for c in copies]

    async def _send_surviving(self, channel: Any, copy: Copy, timeout: float) -> None:
        try:
            return await self._send(channel, copy, None)
        except BrokerConnectionError:
            pass  # the connection died first: the link makes a new one

        async def attempt() -> None:
            await self._send(await self.link.channel("publish", confirms=True), copy, None)

        await surviving_outages(attempt, timeout)

    def _parts(self, copy: Copy) -> tuple[bytes, spec.Basic.Properties]:
        """The body and properties of ``copy``: the wire format's parts, then the engine's."""
        parts = self.wire_format.split(copy.payload) if copy.message else WireParts(copy.payload)
        given: dict[str, Any] = {"correlation_id": copy.message_id}
        given.update((k, v) for k, v in parts.properties.items() if k in FORMAT_PROPERTIES)
        headers = {**parts.headers, **copy.headers}
        if copy.message:
            # Left out of a task message where its reader finds the same without them
            # (``fields.incoming``): the id when the correlation id is it, and no hand-outs
            # before. A headers table costs the publisher and every reader.
            if headers.get(t.H_ID) == given["correlation_id"]:
                del headers[t.H_ID]
            if headers.get(t.H_DELIVERIES) == 0:
                del headers[t.H_DELIVERIES]
        properties = spec.Basic.Properties(
            **given,
            delivery_mode=2 if copy.persistent else 1,  # 1: transient
            priority=copy.priority,
            message_id=copy.copy_id,  # unique per copy: returns are matched by it
            headers=headers or None,
        )
        return parts.body, properties

    async def _send(self, channel: Any, copy: Copy, timeout: float | None) -> None:
        """Publish ``copy`` and wait for its confirm (``timeout``: at most that long)."""
        try:
            return await self._send_once(channel, copy, timeout)
        except aiormq.exceptions.DeliveryError as exc:
            if isinstance(exc, aiormq.exceptions.PublishError):
                raise self._not_stored(copy, exc) from exc
        await self._send_after_nack(channel, copy, timeout)

    async def _send_after_nack(self, channel: Any, copy: Copy, timeout: float | None) -> None:
        """RabbitMQ refused ``copy``: send it again on a new channel until ``timeout``. A
        quorum queue refuses publishes while it elects a leader, and RabbitMQ 3.10 keeps
        refusing them on a channel that saw the old leader's node go."""
        loop = asyncio.get_running_loop()
        deadline, pause = loop.time() + (timeout or _NACK_PATIENCE), _FIRST_NACK_PAUSE
        while True:
            await asyncio.sleep(pause)  # a back-off while the queue elects its leader
            pause = min(pause * 2, _LAST_NACK_PAUSE)
            channel = await self.link.renewed("publish", channel, timeout or _NACK_PATIENCE)
            try:
                return await self._send_once(channel, copy, timeout)
            except aiormq.exceptions.DeliveryError as exc:
                if isinstance(exc, aiormq.exceptions.PublishError) or loop.time() > deadline:
                    raise self._not_stored(copy, exc) from exc

    async def _send_once(self, channel: Any, copy: Copy, timeout: float | None) -> None:
        body, properties = self._parts(copy)
        with self.link.guard():
            confirmation = await channel.basic_publish(
                body,
                exchange=copy.exchange,
                routing_key=copy.routing_key,
                properties=properties,
                mandatory=True,
                timeout=timeout,
                wait=False,  # its confirm is awaited, and that comes after the write
            )
        if not isinstance(confirmation, spec.Basic.Ack):
            raise BrokerError(
                f"RabbitMQ did not confirm message {copy.message_id} for queue {copy.queue!r} "
                f"({confirmation!r}); it was not stored"
            )

    def _not_stored(self, copy: Copy, exc: aiormq.exceptions.DeliveryError) -> BrokerError:
        if isinstance(exc, aiormq.exceptions.PublishError):
            self.forget(copy.queue)  # maybe deleted behind our back: declare again next time
            return BrokerError(
                f"RabbitMQ returned message {copy.message_id} as unroutable: no queue is bound "
                f"for queue {copy.queue!r} (routing key {copy.routing_key[-60:]!r}). It was "
                f"not stored; was the queue deleted while in use?"
            )
        return BrokerError(
            f"RabbitMQ refused message {copy.message_id} for queue {copy.queue!r} (nack: "
            f"{exc!r}), and kept refusing it; it was not stored. A full quorum queue refuses "
            f"publishes, and so does one without a majority of its nodes up."
        )
