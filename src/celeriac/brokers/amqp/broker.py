"""``AmqpBroker``: the Broker verbs on RabbitMQ (AMQP 0-9-1, through aiormq).

Every AMQP call runs on the broker's own I/O thread (``io``): the sync face waits for it,
the async face awaits it from any loop. Publishing is confirmed and mandatory
(``publish``), fetching and leases are ``consume``, counts and dead letters ``admin``,
revocations ``revocations``, the channel's topics ``channel``; ``topology`` names every
queue and exchange. RabbitMQ keeps no key-value state, so idempotency keys and cluster
token buckets are refused with the fix (``supports_key_value`` is False). Engine: imports
``brokers.base``, aiormq and its own modules; never the app or other engines.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import socket
import weakref
from collections.abc import Collection, Coroutine, Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from celeriac.brokers.amqp import params
from celeriac.brokers.amqp.acks import AckBatcher
from celeriac.brokers.amqp.admin import Admin
from celeriac.brokers.amqp.channel import AmqpSubscription, Channels
from celeriac.brokers.amqp.consume import Consumption
from celeriac.brokers.amqp.io import IOThread
from celeriac.brokers.amqp.lease import Leases
from celeriac.brokers.amqp.link import Link
from celeriac.brokers.amqp.nodes import Nodes, strategy
from celeriac.brokers.amqp.pipeline import DEFAULT_WINDOW, Pipeline, surviving_outages
from celeriac.brokers.amqp.publish import Copy, Publisher, delayed_copy, ready_copy
from celeriac.brokers.amqp.revocations import Revocations
from celeriac.brokers.amqp.topology import MAX_PRIORITY, Names, SharedQueues
from celeriac.brokers.amqp.wire_events import WireControlSubscription, WireEvents
from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    OutboundMessage,
    Subscription,
    Topic,
    check_bucket,
    check_ttl,
)
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.messages.wire import WireFormat, WireParts

T = TypeVar("T")
logger = logging.getLogger("celeriac.brokers.amqp")
# Brokers that published ahead of their confirms: each waits for them at interpreter exit,
# before the I/O thread (a daemon) is gone with what it had not yet written.
_PIPELINED: weakref.WeakSet[AmqpBroker] = weakref.WeakSet()
CONSUMER_TIMEOUT = 1800.0  # RabbitMQ's default consumer_timeout, in seconds
_NO_KEY_VALUE = (
    "RabbitMQ keeps no shared key-value state, so {what} cannot work on an amqp:// broker. {fix}"
)


class AmqpBroker(Broker):
    carries_wire_events = True
    schemes = ("amqp", "amqps", "pyamqp")
    supports_key_value: ClassVar[bool] = False
    delays_counted_per_queue: ClassVar[bool] = False  # the delay levels are shared

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        transport_options: Mapping[str, Any] | None = None,
        use_ssl: bool | Mapping[str, Any] | None = None,
        wire_format: WireFormat | None = None,
        max_priority: int | None = MAX_PRIORITY,
        known_queues: Collection[str] | None = None,
        missing_queue_type: str | None = None,
        delay_queue_type: str | None = None,
        login_method: str | None = None,
        shared_queues: SharedQueues | None = None,
        failover_strategy: Any = None,
    ) -> None:
        """``url``: one node, or several of a cluster (``amqp://a//;amqp://b//``).
        ``known_queues``: the app's queues, of ``queue_type``; any other is made on
        first use with ``missing_queue_type`` (None: every queue is of ``queue_type``).
        ``delay_queue_type``: the shared delay queues' (None: quorum where the server
        has quorum queues with at-least-once dead-lettering, else classic). ``login_method``:
        the SASL mechanism, 'PLAIN' or 'EXTERNAL'. ``shared_queues``: declare the ready
        queues as kombu does, for queues shared with Celery (``topology``); their own
        declarations then give their types. ``failover_strategy``: the order the nodes
        are tried in (``nodes``; the transport option of that name wins)."""
        super().__init__(
            lease_seconds=lease_seconds, delivery_limit=delivery_limit, wire_format=wire_format
        )
        options = dict(transport_options or {})
        params.check_options(options)
        self._ahead = not params.confirm_each_publish(options)  # see ``pipeline``
        self._window = params.confirm_window(options, DEFAULT_WINDOW)
        self.url = url
        targets = params.parse_targets(url, options, use_ssl, login_method)
        chosen = options.get("failover_strategy", failover_strategy)
        self.nodes = Nodes(targets, strategy(chosen))
        self.target = targets[0]
        self.queue_type = params.queue_type(options, len(targets))
        known = None if known_queues is None else frozenset(known_queues)
        each = None
        self.shared_queues = shared_queues
        if shared_queues is not None:  # a missing queue is made as kombu makes it
            missing_queue_type = shared_queues.missing_type
            each = shared_queues.types()
        self.types = params.QueueTypes(
            self.queue_type, missing_queue_type, delay_queue_type, known, each
        )
        self.max_priority = max_priority  # task_queue_max_priority: classic queues' levels
        # No quorum priorities in 3.10; a classic queue has them if declared with a maximum.
        self.supports_priorities = self.queue_type == "classic" and bool(max_priority)
        self.consumer_timeout = float(options.get("consumer_timeout", CONSUMER_TIMEOUT))
        self.confirm_timeout = float(options.get("confirm_timeout", 30.0))
        retention = str(options.get("revocation_retention", "7D"))
        try:
            self.names = Names(str(options.get("namespace", "celeriac")))
        except ValueError as exc:
            raise ImproperlyConfigured(f"broker_transport_options['namespace']: {exc}") from None
        self._name = f"celeriac {socket.gethostname()}-{os.getpid()}"
        self._io = IOThread("celeriac-amqp-io", on_fork=self._forked)
        self._build(retention)

    def _build(self, retention: str) -> None:
        self._retention = retention
        self.link = Link(self.nodes, self._name)
        self.publisher = Publisher(
            self.link, self.names, self.types, self.delivery_limit, retention,
            self.max_priority, self.wire_format, self.shared_queues,
        )  # fmt: skip
        self.consumption = Consumption(self, self.link, self.publisher)
        self.acks = AckBatcher(self._io, self.consumption.ack_many)
        self.consumption.acks_pending = self.acks.pending
        self.admin = Admin(self.link, self.publisher)
        self.revocations = Revocations(self.link, self.publisher)
        self.channels = Channels(self.link, self.names)
        self.wire_events = WireEvents(self.link, self.wire_format)
        self.leases = Leases(self.nodes, self.names, self._name)
        self.pipeline: Pipeline[OutboundMessage] = Pipeline(
            self._io, self._hand_over, self._window, self.confirm_timeout
        )

    def _forked(self) -> None:
        """In a forked child: nothing of the parent's connection may be touched."""
        self._name = f"celeriac {socket.gethostname()}-{os.getpid()}"
        self._build(self._retention)

    def __repr__(self) -> str:
        return f"<AmqpBroker {self.nodes.safe_url} queue_type={self.queue_type}>"

    def _run(self, work: Coroutine[Any, Any, T]) -> T:
        return self._io.run(work)

    async def _await(self, work: Coroutine[Any, Any, T]) -> T:
        return await self._io.run_async(work)

    # -- producer ---------------------------------------------------------------------------
    async def _copies(self, messages: Sequence[OutboundMessage]) -> list[Copy]:
        """Each message's copy to publish, its queue (and delay levels) declared first."""
        copies = []
        for message in messages:
            if message.delay is not None and message.delay > 0:
                await self.publisher.declare_delays(message.queue)
                copies.append(
                    delayed_copy(self.names, message.queue, message.payload, message.message_id,
                                 message.priority, message.delay, message.persistent)
                )  # fmt: skip
            else:
                await self.publisher.declare_queue(message.queue)
                copies.append(
                    ready_copy(message.queue, message.payload, message.message_id,
                               message.priority, 0, message.persistent,
                               self.publisher.route(message.queue))
                )  # fmt: skip
        return copies

    async def _publish(self, messages: Sequence[OutboundMessage]) -> None:
        copies = await self._copies(messages)
        await self.publisher.publish(copies, timeout=self.confirm_timeout)

    async def _hand_over(self, messages: list[OutboundMessage]) -> list[Any]:
        """The pipeline's hand-over: declare, then start the sends (riding out an outage
        of up to the confirm timeout, while later calls queue behind, in order)."""

        async def attempt() -> list[Any]:
            copies = await self._copies(messages)
            return await self.publisher.send_ahead(copies, self.confirm_timeout)

        return await surviving_outages(attempt, self.confirm_timeout)

    def _pipelined(self) -> bool:
        """Whether a publish may go ahead of its confirm: pipelining is on and the
        connection is up. Without a connection the call waits, so a refused login or
        certificate, or RabbitMQ being down, is raised by the call that meets it."""
        if self._ahead and self.link.alive:
            _PIPELINED.add(self)
            return True
        return False

    def publish(self, message: OutboundMessage) -> None:
        """Returns once RabbitMQ confirmed the message, or, with pipelined confirms (the
        default) on a live connection, at once (``flush`` waits for the confirms)."""
        if self._pipelined():
            self.pipeline.put(message)
        else:
            self._run(self._publish([message]))

    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        """All messages pipelined on one channel; returns once every one is confirmed."""
        self._run(self._publish(messages))

    async def publish_async(self, message: OutboundMessage) -> None:
        if self._pipelined():
            await self.pipeline.put_async(message)
        else:
            await self._await(self._publish([message]))

    async def publish_many_async(self, messages: Sequence[OutboundMessage]) -> None:
        await self._await(self._publish(messages))

    def flush(self) -> None:
        """Wait for the confirms of every pipelined publish; raise for those not stored."""
        self.pipeline.flush()

    async def flush_async(self) -> None:
        await self.pipeline.flush_async()

    def confirm_each_publish(self) -> None:
        self.flush()
        self._ahead = False

    def _flush_at_exit(self) -> None:
        """Pipelined publishes still unconfirmed when the process ends: wait (up to the
        confirm timeout) and log any that were not stored, as nobody is left to raise to."""
        try:
            self.pipeline.settle_within(self.confirm_timeout)
            self.pipeline.raise_failures()
        except Exception as exc:  # the process is ending: the log is the last word
            logger.error("at exit: %s", exc)

    # -- consumer ---------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        return await self._await(self.consumption.fetch(list(queues), limit, timeout))

    async def stop_fetching(self) -> None:
        await self._await(self.consumption.give_back_unfetched())

    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        # Acks that meet on their way to the I/O loop go together (see amqp.acks).
        return await self.acks.ack(delivery)

    async def settle_acks(self) -> None:
        # An ack is written without a reply (see ``Consumption.ack_many``): a round trip
        # on each channel that carried one says RabbitMQ has applied it.
        await self._await(self.consumption.settle_acks())

    async def requeue(self, delivery: Delivery, *, count_delivery: bool = False) -> bool:
        return await self._await(self.consumption.requeue(delivery, count_delivery))

    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str = ""
    ) -> bool:
        reason = DeadLetterReason(reason)
        return await self._await(self.consumption.dead_letter(delivery, reason, detail))

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        return await self._await(self.consumption.extend(list(deliveries)))

    # -- admin ------------------------------------------------------------------------------
    def declare_queue(self, queue: str) -> None:
        """Declare ``queue`` with its dead-letter queue, the shared delay levels and its
        binding from them (as the first delayed publish to it would), e.g. before listing
        its bindings."""
        self._run(self.publisher.declare_delays(queue))

    def queue_length(self, queue: str) -> int:
        """Messages waiting: ready in RabbitMQ, plus those this process's consumer received
        ahead of a fetch (another process's read-ahead is not seen)."""
        return self._run(self._queue_length(queue))

    async def _queue_length(self, queue: str) -> int:
        counted = await self.consumption.count_waiting(queue)
        if counted is not None:
            return counted
        return await self.admin.queue_length(queue) + self.consumption.stashed(queue)

    def delayed_count(self, queue: str) -> int:
        """Messages waiting for their countdown or eta in the delay levels, which every
        queue of the namespace shares, so every queue's (and ``queue``'s own in the
        per-queue levels of earlier versions, while any are left)."""
        return self._run(self.admin.delayed_count(queue))

    def purge(self, queue: str) -> int:
        """Drop ``queue``'s ready messages and its delayed ones, read out of the shared
        delay levels (the others are put back)."""
        return self._run(self._purge(queue))

    async def _purge(self, queue: str) -> int:
        return await self.consumption.drop_stashed(queue) + await self.admin.purge(queue)

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        return self._run(self.admin.dead_letters(queue, max(0, limit)))

    def replay_dead_letters(self, queue: str, entry_ids: Sequence[str] | None = None) -> int:
        ids = None if entry_ids is None else list(entry_ids)
        return self._run(self.admin.replay(queue, ids))

    def purge_dead_letters(self, queue: str) -> int:
        return self._run(self.admin.purge_dead_letters(queue))

    def check_time_limit(self, longest: float | None) -> str | None:
        """Warn when a task may run past RabbitMQ's ``consumer_timeout``: RabbitMQ would then
        close the channel and deliver the running task's message again."""
        if longest is None or longest < self.consumer_timeout:
            return None
        return (
            f"the longest hard time limit ({longest:.0f} s) is not below RabbitMQ's "
            f"consumer_timeout ({self.consumer_timeout:.0f} s, the 'consumer_timeout' "
            f"transport option; set it to the server's value): a task running that long has "
            f"its channel closed by RabbitMQ and its message delivered again while it still "
            f"runs. Raise consumer_timeout in rabbitmq.conf (and the transport option), or "
            f"lower the time limit."
        )

    # -- shared state -----------------------------------------------------------------------
    def _revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        self._run(self.revocations.revoke(ids, ttl, terminate, signal))

    def revoked_ids(self) -> dict[str, float]:
        return self._run(self.revocations.revoked())

    # -- the channel (``channel``) ----------------------------------------------------------
    def _publish_topic(self, topic: Topic, payload: bytes) -> None:
        self._run(self.channels.publish(topic, payload, self.confirm_timeout))

    async def _publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        await self._await(self.channels.publish(topic, payload, self.confirm_timeout))

    # -- events for the wire format's own monitors (Celery's ``celeryev``) ---------------
    def publish_wire_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        self._run(self.wire_events.publish(events))

    async def publish_wire_events_async(self, events: Sequence[Mapping[str, Any]]) -> None:
        await self._await(self.wire_events.publish(events))

    async def subscribe_wire_control(self, hostname: str) -> Subscription:
        exchange = self.wire_format.control_exchange
        assert exchange is not None
        subscription = WireControlSubscription(self._io, self.channels, exchange, hostname)
        await subscription.start()
        return subscription

    def publish_wire_command(self, method: str, arguments: Mapping[str, Any]) -> None:
        parts = self.wire_format.control_command_parts(method, arguments)
        self._run(self.wire_events.command(parts))

    async def publish_wire_reply(self, exchange: str, routing_key: str, reply: WireParts) -> None:
        await self._await(self.wire_events.reply(exchange, routing_key, reply))

    async def _subscribe(self, topic: Topic, history: bool) -> Subscription:
        subscription = AmqpSubscription(self._io, self.channels, topic, history)
        await subscription.start()
        return subscription

    def reserve(self, key: str, value: str, ttl: float) -> str | None:
        check_ttl(ttl, "an idempotency key's ttl")
        raise ImproperlyConfigured(
            _NO_KEY_VALUE.format(
                what="idempotency keys (apply_async(idempotency_key=...))",
                fix="Drop the idempotency_key and rely on worker-side deduplication "
                "(worker_deduplicate_successful_tasks), or use a Redis broker.",
            )
        )

    # -- leases (``lease``): an exclusive queue per lease ------------------------------------
    def _hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        return self._run(self.leases.hold(name, holder, ttl))

    def drop_lease(self, name: str, holder: str) -> bool:
        return self._run(self.leases.drop(name, holder))

    def release(self, key: str, value: str) -> bool:
        raise ImproperlyConfigured(
            _NO_KEY_VALUE.format(what="idempotency keys", fix="Use a Redis broker.")
        )

    async def acquire(self, key: str, rate: float, capacity: float) -> float:
        check_bucket(rate, capacity)
        raise ImproperlyConfigured(
            _NO_KEY_VALUE.format(
                what="cluster-wide rate limits (rate_limit_scope='cluster')",
                fix="Use rate_limit_scope='worker' (each worker keeps its own limit), "
                "or a Redis broker.",
            )
        )

    # -- closing ----------------------------------------------------------------------------
    async def _shutdown(self) -> None:
        await self.consumption.close()
        await self.leases.close()
        await self.link.close()

    def close(self) -> None:
        """Wait for pipelined confirms (failures logged), give back what no fetch handed
        out, close the connection, end the I/O thread."""
        if not self.pipeline.idle:
            self._flush_at_exit()
        _PIPELINED.discard(self)
        own_thread = not self._io.adopted
        self._io.stop(self._shutdown())
        if own_thread:  # its loop has stopped: an ack still on it would never be answered
            self.acks.abandon(
                BrokerConnectionError(
                    "the broker was closed before this ack was sent; RabbitMQ delivers the "
                    "message again now that the connection is gone"
                )
            )

    def adopt_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Serve from the caller's running ``loop`` instead of the I/O thread (see
        ``Broker.adopt_loop``); False when the thread has started already."""
        return self._io.adopt(loop)

    async def close_async(self) -> None:
        """Serving from the caller's loop: close the connection there and start afresh on
        the I/O thread at the next call. Otherwise nothing is bound to the caller's loop,
        and ``close`` ends the connection."""
        if not (self._io.adopted and self._io.in_thread()):
            return
        try:
            await self._shutdown()
        finally:
            self._io.release()
            self._build(self._retention)  # nothing bound to the loop that served


@atexit.register
def _flush_pipelined_at_exit() -> None:
    for broker in list(_PIPELINED):
        if not broker.pipeline.idle:
            broker._flush_at_exit()
