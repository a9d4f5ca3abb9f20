"""Fetching, leases, fencing and settling on RabbitMQ, on the broker's I/O loop.

A fetch takes messages with ``basic.get``, queue after queue, up to exactly the free
slots it was asked for; only when every queue is empty does it wait, with a consumer per
queue (prefetch 1 each) that it cancels as soon as anything arrives, so no message sits
in a worker that has no slot for it. Each hand-out holds a lease, timed on this loop:
``extend`` renews it; when it runs out the message is taken back (published again with
its delivery counted, or dead-lettered at the limit, then acked). A delivery whose lease
ended, or whose channel died, is fenced: settling it returns False and touches nothing,
so an ack never reaches a channel other than the one the message came on.

Acks: ``ack_many`` settles a batch at once (``acks.AckBatcher`` gathers it across threads);
delivery tags of a channel that are all being acked, with nothing below them still
unsettled, go as one ``basic.ack`` with ``multiple``. Every tag received stays in
``_open_tags`` until its ack is written, whatever path takes it (lease, requeue, dead
letter), so a multiple ack never covers a message another path still holds.

Counting: each copy carries the hand-outs before it (``x-celeriac-deliveries``). A copy
that RabbitMQ delivers again (``redelivered``, or a quorum queue's ``x-delivery-count``)
was lost with a connection or channel: it is first published again with that loss counted
(or dead-lettered at the limit), so a message that kills its worker stops at the limit.
Engine helper: imports aiormq, ``brokers.base`` and the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from aiormq import spec
from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp.fields import incoming, number, payload_of
from celeriac.brokers.amqp.link import Channel, Link
from celeriac.brokers.amqp.publish import Copy, Publisher, dead_copy, dead_letter_of, ready_copy
from celeriac.brokers.amqp.wakeup import Wakeup
from celeriac.brokers.base import Broker, DeadLetterReason, Delivery
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.brokers.amqp")

_RECOUNTS = 5  # count_waiting's tries at a moment with no delivery on its way
# Seconds between basic.get polls of a fetch past the standing consumer's prefetch.
PAST_PREFETCH_POLL = 0.1
# A delivery's token: unique in this process, which is all a key of ``_held`` needs (a
# counter costs no system call, where a random one would on every message).
_tokens = itertools.count(1)


@dataclass(eq=False)
class _Held:
    delivery: Delivery
    channel: Channel
    tag: int
    until: float = 0.0  # loop time when its lease runs out


@dataclass(eq=False)
class _Arrived:
    """A message a waiting consumer received and no fetch has handed out yet."""

    queue: str
    message: DeliveredMessage
    channel: Channel


@dataclass(eq=False)
class _Standing:
    """The consumer that stays on one queue while a worker fetches only from it."""

    queue: str
    channel: Channel
    tag: str
    prefetch: int


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
        # One timer for every lease, at the soonest end (a timer per message would cost a
        # timer handle, a heap push and a cancel per task): see ``_arm``.
        self._lease_timer: asyncio.TimerHandle | None = None
        self._lease_loop: asyncio.AbstractEventLoop | None = None
        self._taking_back: set[asyncio.Task[None]] = set()  # messages whose lease ran out
        self._stash: list[_Arrived] = []
        self._rotation = 0
        self._qos_for: Channel | None = None
        self._standing: _Standing | None = None
        self._arrival = Wakeup()  # set when a standing consumer receives a message
        self._arrivals = 0  # how many it has received, for an exact count_waiting
        # Delivery tags received and not acked yet, per channel (see ``ack_many``).
        self._open_tags: dict[Channel, set[int]] = {}
        # Channels that carried an ack since the last ``settle_acks``.
        self._acked_on: set[Channel] = set()
        # Whether acks wait to be written (the broker's ``AckBatcher.pending``).
        self.acks_pending: Callable[[], bool] = lambda: False

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
        if len(names) == 1:
            return await self._fetch_one(names[0], limit, deadline)
        # A connection that cannot be made raises at once: the worker's consumer says the
        # broker is down (even for a blip shorter than this wait) and spaces its attempts.
        while True:
            taken = await self._take(names, limit)
            if taken or loop.time() >= deadline:
                return taken
            await self._wait(names, deadline - loop.time())

    async def _fetch_one(self, name: str, limit: int, deadline: float) -> list[Delivery]:
        """One queue: a standing consumer whose prefetch is the most slots ever asked for
        (the worker's prefetch), so RabbitMQ pushes messages as slots free up and no
        fetch pays a ``basic.get`` round trip per message. RabbitMQ never lets more be
        unacknowledged than that prefetch, so held plus stashed stays within it: a message
        never waits here while the worker has no slot for it. A worker asks for the slots
        whose acks are still gathered, not written: those come pushed once they are."""
        loop = asyncio.get_running_loop()
        while True:
            standing = await self._stand(name, limit)
            taken = await self._unstash(name, limit)
            if not taken and self._unacked(standing) >= standing.prefetch:
                if self.acks_pending():
                    # A worker fetches for slots whose acks are about to be written: once
                    # they are, RabbitMQ pushes the next messages. A ``basic.get`` each
                    # would cost a round trip and more unacked than the prefetch.
                    if loop.time() >= deadline:
                        return []
                    self._arrival.clear()
                    await self._arrival.wait(deadline - loop.time())
                    continue
                # Asked for more than the consumer may hold (a caller fetching past its
                # free slots): get them directly. RabbitMQ pushes nothing more to a full
                # consumer, so no arrival wakes this wait: look again every
                # ``PAST_PREFETCH_POLL``.
                taken = await self._take([name], limit)
                wait = PAST_PREFETCH_POLL
            else:
                wait = None
            if taken or loop.time() >= deadline:
                return taken
            self._arrival.clear()
            remaining = deadline - loop.time()
            await self._arrival.wait(remaining if wait is None else min(wait, remaining))

    def _unacked(self, standing: _Standing) -> int:
        """Messages the standing consumer's channel delivered that are not settled yet."""
        channel = standing.channel
        held = sum(1 for h in self._held.values() if h.channel is channel)
        return held + sum(1 for a in self._stash if a.channel is channel)

    async def _stand(self, name: str, prefetch: int) -> _Standing:
        """Make sure a consumer of ``name`` with at least ``prefetch`` stands on a live
        channel (again after a reconnect, or with a larger prefetch)."""
        channel = await self.link.channel("standing")
        standing = self._standing
        if (
            standing is not None
            and standing.channel is channel
            and standing.queue == name
            and standing.prefetch >= prefetch
        ):
            return standing
        if standing is not None and standing.channel is channel and not channel.is_closed:
            with contextlib.suppress(Exception):  # what it received stays ours, in the stash
                await channel.basic_cancel(standing.tag)
        prefetch = max(prefetch, standing.prefetch if standing is not None else 0)
        self._standing = None
        await self.publisher.declare_queue(name)
        with self.link.guard():
            await channel.basic_qos(prefetch_count=prefetch, global_=False)
            ok = await channel.basic_consume(name, self._receiver(name, channel), no_ack=False)
        assert ok.consumer_tag is not None
        # A lost channel wakes a fetch waiting for arrivals: it reconnects (or reports the
        # outage) now, not after its wait.
        channel.closing.add_done_callback(lambda _: self._arrival.set())
        self._standing = _Standing(name, channel, ok.consumer_tag, prefetch)
        return self._standing

    def _receiver(self, queue: str, channel: Channel) -> Any:
        async def receive(message: DeliveredMessage) -> None:
            self._received(channel, message)
            self._stash.append(_Arrived(queue, message, channel))
            self._arrivals += 1
            self._arrival.set()

        return receive

    async def _unstash(self, name: str, limit: int) -> list[Delivery]:
        """Up to ``limit`` received messages of ``name``, highest priority first."""
        waiting = [a for a in self._stash if a.queue == name]
        if not waiting:
            return []
        if self.publisher.priorities_on(name):  # (a stable sort: FIFO within a priority)
            waiting.sort(key=lambda a: -(number(a.message.header.properties.priority) or 0))
        taken: list[Delivery] = []
        for arrived in waiting:
            if len(taken) >= limit:
                break
            self._stash.remove(arrived)
            await self._keep(taken, arrived.queue, arrived.message, arrived.channel)
        return taken

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
                    self._received(channel, message)
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
                self._received(channel, message)
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
        found = incoming(message.header.properties, message.redelivered)
        message_id, before, priority, lost = (
            found.message_id,
            found.before,
            found.priority,
            found.lost,
        )
        properties = message.header.properties
        body = payload_of(properties, message.body, self.publisher.wire_format)
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
            if count >= self.limit:  # no worker settles it: hand it back to the fetcher
                self.broker._hand_back(dead_letter_of(copy))
            await self._ack_one(channel, tag)
            return None
        token = f"{next(_tokens):x}"
        delivery = Delivery(self.broker, queue, body, message_id, before + 1, priority, token)
        held = _Held(delivery, channel, tag)
        self._held[token] = held
        self._arm(held)
        return delivery

    # -- leases ---------------------------------------------------------------------------
    def _arm(self, held: _Held) -> None:
        """(Re)start ``held``'s lease: it runs out a lease from now, unless renewed."""
        loop = asyncio.get_running_loop()
        held.until = loop.time() + self.lease
        timer = self._lease_timer
        # (Sooner than the timer: a shorter lease than before, or a timer of another loop.)
        if timer is None or self._lease_loop is not loop or held.until < timer.when():
            self._set_lease_timer(loop, held.until)

    def _set_lease_timer(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._lease_timer is not None:
            self._lease_timer.cancel()
        self._lease_timer = loop.call_at(when, self._leases_due)
        self._lease_loop = loop

    def _leases_due(self) -> None:
        """The soonest lease end came: take back each message whose lease ran out (some were
        settled or renewed meanwhile), then wait for the next end."""
        self._lease_timer = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        for token in [token for token, held in self._held.items() if held.until <= now]:
            task = loop.create_task(self._expired(token))
            self._taking_back.add(task)  # (a task nobody references may be collected)
            task.add_done_callback(self._taking_back.discard)
        ends = [held.until for held in self._held.values() if held.until > now]
        if ends:
            self._set_lease_timer(loop, min(ends))

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
            if reason is not None:  # no worker settles it: hand it back to the fetcher
                self.broker._hand_back(dead_letter_of(copy))
            await self._ack_one(held.channel, held.tag)
        except BrokerConnectionError as exc:
            logger.warning("could not take back %s after its lease: %s", d.message_id, exc)

    def _take_lease(self, delivery: Delivery) -> _Held | None:
        """End ``delivery``'s lease and return what it held; None when it was lost."""
        held = self._held.pop(delivery.token, None)
        if held is None:
            return None
        if held.channel.is_closed:
            return None  # the channel died: RabbitMQ has given the message to someone
        return held

    async def ack(self, delivery: Delivery) -> bool:
        held = self._take_lease(delivery)
        if held is None:
            return False
        await self._ack_one(held.channel, held.tag)
        return True

    async def ack_many(self, deliveries: Sequence[Delivery]) -> list[bool]:
        """Ack every delivery of a batch (False for one whose lease was lost). A channel's
        tags below the lowest one still unsettled there go as one multiple ack."""
        results: list[bool] = []
        tags: dict[Channel, list[int]] = {}
        for delivery in deliveries:
            held = self._take_lease(delivery)
            results.append(held is not None)
            if held is not None:
                tags.setdefault(held.channel, []).append(held.tag)
        for channel, acked in tags.items():
            acked.sort()
            unacked = self._open_tags.get(channel)
            if unacked is None:  # not received through this class: ack each alone
                unacked = set(acked) | {0}
            floor = min(unacked.difference(acked), default=None)
            covered = [tag for tag in acked if floor is None or tag < floor]
            frames = [(covered[-1], True)] if len(covered) > 1 else [(t, False) for t in covered]
            frames += [(tag, False) for tag in acked[len(covered) :]]
            unacked.difference_update(acked)
            self._acked_on.add(channel)
            with self.link.guard():
                for tag, multiple in frames:
                    # Queued for the socket, in order, without waiting for the write: an
                    # ack is never confirmed by RabbitMQ anyway, and the close writes what
                    # is queued first (``Link.close``). A lost connection loses it, and the
                    # message comes again, as after any crash.
                    await channel.basic_ack(tag, multiple=multiple, wait=False)
        return results

    def _received(self, channel: Channel, message: DeliveredMessage) -> None:
        """Note a tag received on ``channel``: unsettled until ``_ack_one``/``ack_many``."""
        if channel not in self._open_tags:  # a new channel: forget the dead ones
            for dead in [c for c in self._open_tags if c.is_closed]:
                del self._open_tags[dead]
                self._acked_on.discard(dead)  # a worker never settles: no dead ones kept
        assert message.delivery_tag is not None
        self._open_tags.setdefault(channel, set()).add(message.delivery_tag)

    async def _ack_one(self, channel: Channel, tag: int) -> None:
        self._open_tags.get(channel, set()).discard(tag)
        self._acked_on.add(channel)
        with self.link.guard():
            await channel.basic_ack(tag)

    async def settle_acks(self) -> None:
        """Return once RabbitMQ has applied every ack sent so far. ``basic.ack`` has no
        reply; a channel's frames are handled in order, so the reply to a request sent
        after them on that channel says they were. The request is a passive declare of
        ``amq.direct``, which every vhost has and which needs no permission."""
        channels, self._acked_on = self._acked_on, set()
        for channel in channels:
            if channel.is_closed:
                continue  # its unacked messages are back in their queues: nothing to wait for
            with self.link.guard():
                await channel.exchange_declare("amq.direct", passive=True)

    async def requeue(self, delivery: Delivery, count_delivery: bool) -> bool:
        held = self._take_lease(delivery)
        if held is None:
            return False
        count = delivery.delivery_count if count_delivery else delivery.delivery_count - 1
        copy = ready_copy(delivery.queue, delivery.payload, delivery.message_id,
                          delivery.priority, count)  # fmt: skip
        await self.publisher.publish([copy])
        await self._ack_one(held.channel, held.tag)
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
        await self._ack_one(held.channel, held.tag)
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

    async def count_waiting(self, queue: str) -> int | None:
        """Ready messages of ``queue`` plus this process's read-ahead of it, each counted
        once; None when no consumer stands on ``queue`` (ready + stashed is exact then).

        While the consumer stands, a message can be counted ready and then land in the
        stash before the count is read, or be sent before the count and arrive after it.
        So the count is asked on the consumer's own channel and followed by a second
        question there, which RabbitMQ answers after every delivery sent before the
        first: when nothing arrived in between, no message was on its way, and the sum
        is exact. (Cancelling the consumer would settle it too, but a quorum queue
        counts a delivery that a cancel cut off as a failed one.)"""
        standing = self._standing
        if standing is None or standing.queue != queue or standing.channel.is_closed:
            return None
        channel = standing.channel
        for _ in range(_RECOUNTS):
            arrived_before = self._arrivals
            with self.link.guard():
                ok = await channel.queue_declare(queue, passive=True)
                await channel.queue_declare(queue, passive=True)  # after what was sent
            if self._arrivals == arrived_before:
                break  # (a busy queue keeps the last try: off by what was in flight)
        return int(ok.message_count or 0) + self.stashed(queue)

    def stashed(self, queue: str) -> int:
        """Messages of ``queue`` received ahead of a fetch: still waiting to be handed out."""
        return sum(1 for a in self._stash if a.queue == queue and not a.channel.is_closed)

    async def drop_stashed(self, queue: str) -> int:
        """Purge: ack (delete) the messages of ``queue`` received ahead of a fetch."""
        dropped = [a for a in self._stash if a.queue == queue]
        self._stash = [a for a in self._stash if a.queue != queue]
        count = 0
        for arrived in dropped:
            if arrived.channel.is_closed:
                continue  # RabbitMQ has it back: the purge of the queue takes it
            assert arrived.message.delivery_tag is not None
            await self._ack_one(arrived.channel, arrived.message.delivery_tag)
            count += 1
        return count

    async def give_back_unfetched(self) -> None:
        """Stop the standing consumer, and give back (uncounted) what consumers received
        but no fetch handed out."""
        standing, self._standing = self._standing, None
        if standing is not None and not standing.channel.is_closed:
            with contextlib.suppress(Exception):  # no more deliveries after this
                await standing.channel.basic_cancel(standing.tag)
        stash, self._stash = self._stash, []
        for arrived in stash:
            if arrived.channel.is_closed:
                continue
            await self._intake_back(arrived)

    async def close(self) -> None:
        await self.give_back_unfetched()
        if self._lease_timer is not None:
            self._lease_timer.cancel()
            self._lease_timer = None
        self._held.clear()

    async def _intake_back(self, arrived: _Arrived) -> None:
        message = arrived.message
        properties = message.header.properties
        found = incoming(properties, message.redelivered)
        headers = properties.headers if isinstance(properties.headers, dict) else {}
        if message.redelivered or "x-delivery-count" in headers:
            return  # closing the channel returns it; the next fetch counts it as it must
        with contextlib.suppress(Exception):
            body = payload_of(properties, message.body, self.publisher.wire_format)
            copy = ready_copy(arrived.queue, body, found.message_id, found.priority, found.before)
            await self.publisher.publish([copy])
            assert message.delivery_tag is not None
            await self._ack_one(arrived.channel, message.delivery_tag)
