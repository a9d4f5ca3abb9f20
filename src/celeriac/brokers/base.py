"""The ``Broker`` seam: the verbs every transport implements natively, and their data types.

Imports leaves, ``messages.wire`` and ``messages.revocation``. Engines (memory, redis,
amqp) subclass ``Broker``; the worker and the producer use only what is here. Adapters take
constructor arguments, never ``app.conf`` (the wire format too: ``wire_format=``, the
``CLR1`` envelope unless given).

Semantics every engine keeps (``celeriac.testing.contracts`` checks them):
- ``publish`` returns once the broker holds the message; a ``delay`` waits broker-side,
  measured by the broker's own clock (Redis server time), never a worker's.
- ``fetch`` hands out at most ``limit`` messages, higher priority first, FIFO within a
  priority; each handed-out message holds a lease of ``lease_seconds``.
- A lease that is not extended expires: the message is handed out again with its
  ``delivery_count`` raised, or dead-lettered (``DELIVERY_LIMIT``) once the count reached
  ``delivery_limit``. A live holder that keeps calling ``extend`` never loses its lease.
- A message the engine dead-letters on its own (a lease that ran out at the limit, an
  entry it cannot hand out) is handed back, once, by ``take_dead_lettered`` in the process
  whose call made it: the engine knows nothing of tasks, so the caller tells whoever waits.
- ``ack``/``requeue``/``dead_letter``/``extend`` on a delivery whose lease was lost (taken
  over after expiry) are refused: they return False and change nothing (fencing).
- Shared state every worker sees (revocations, idempotency keys, token buckets) expires:
  no key grows without bound. Expiry times handed out are on this process's ``time.time()``
  clock (an engine with its own clock converts by the time left), so clock skew between
  machines never shortens or stretches a ttl.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from celeriac.brokers.topics import (  # (re-exported: the channel is part of the seam)
    PENDING_LIMIT as PENDING_LIMIT,
)
from celeriac.brokers.topics import ChannelKind as ChannelKind
from celeriac.brokers.topics import Subscription as Subscription
from celeriac.brokers.topics import Topic as Topic
from celeriac.brokers.topics import checked_payload
from celeriac.messages import revocation
from celeriac.messages.revocation import Revocation as Revocation  # re-exported
from celeriac.messages.wire import NATIVE, WireFormat, WireParts

MIN_PRIORITY = 0
MAX_PRIORITY = 9  # higher number = served first, on every engine
#: Dead letters an engine made on its own that ``take_dead_lettered`` keeps for its caller;
#: past this many (nobody takes them: a process that never fetches), the oldest go.
HANDED_BACK_KEEP = 10_000


class DeadLetterReason(str, enum.Enum):
    """Why a message went to the dead letters."""

    MALFORMED = "malformed"  # the payload could not be decoded, or a field of it is invalid
    UNKNOWN_TASK = "unknown_task"  # no task of that name is registered
    CONTENT_DISALLOWED = "content_disallowed"  # content type not in accept_content
    OVERSIZED = "oversized"  # larger than the configured maximum
    BAD_SIGNATURE = "bad_signature"  # unsigned, or its signature does not verify
    DELIVERY_LIMIT = "delivery_limit"  # handed out delivery_limit times, no outcome
    WORKER_LOST = "worker_lost"  # the process running it died delivery_limit times
    REJECTED = "rejected"  # the task raised Reject(requeue=False)
    FAILED = "failed"  # it failed or timed out, with acks_on_failure_or_timeout off
    INTERNAL_ERROR = "internal_error"  # handling it failed in the worker itself (a bug)


def check_priority(priority: int) -> None:
    if not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} "
            f"({MAX_PRIORITY} is served first), not {priority!r}"
        )


def check_ttl(ttl: float, what: str) -> None:
    if not isinstance(ttl, (int, float)) or not 0 < ttl < math.inf:
        raise ValueError(f"{what} must be a positive number of seconds, not {ttl!r}")


def check_bucket(rate: float, capacity: float) -> None:
    if not isinstance(rate, (int, float)) or not 0 < rate < math.inf:
        raise ValueError(f"a token bucket's rate must be positive tokens per second, not {rate!r}")
    if not isinstance(capacity, (int, float)) or not 1 <= capacity < math.inf:
        raise ValueError(f"a token bucket's capacity must be at least 1 token, not {capacity!r}")


def take_token(tokens: float, elapsed: float, rate: float, capacity: float) -> tuple[float, float]:
    """One token bucket step: (tokens left, wait). ``tokens`` were there ``elapsed`` seconds
    ago; wait is 0.0 when a token was taken, else the seconds until one will be there."""
    tokens = min(capacity, tokens + max(elapsed, 0.0) * rate)
    if tokens >= 1 - 1e-9:  # tolerate float rounding at the exact refill moment
        return max(0.0, tokens - 1), 0.0
    return tokens, (1 - tokens) / rate


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A message on its way to a queue: encoded bytes plus the routing a broker needs."""

    queue: str
    payload: bytes
    message_id: str
    priority: int = MIN_PRIORITY
    # Seconds to wait before it becomes due, counted on the broker's clock from when the
    # broker stores it (so producers' and workers' clock skew never moves a countdown).
    delay: float | None = None
    # False: the broker need not keep it across its own restart (RabbitMQ's transient
    # delivery mode, ``task_default_delivery_mode``); brokers without the notion ignore it.
    persistent: bool = True

    def __post_init__(self) -> None:
        check_priority(self.priority)


@dataclass(slots=True, eq=False)
class Delivery:
    """A message handed to a consumer, with the lease it holds."""

    broker: Broker = field(repr=False)
    queue: str
    payload: bytes = field(repr=False)
    message_id: str
    delivery_count: int  # 1 on the first hand-out
    priority: int
    token: str  # lease token; a stale token is refused (fencing)

    async def ack(self, *, batch: bool = False) -> bool:
        return await self.broker.ack(self, batch=batch)

    async def requeue(self, *, count_delivery: bool = False) -> bool:
        return await self.broker.requeue(self, count_delivery=count_delivery)

    async def dead_letter(self, reason: DeadLetterReason, detail: str = "") -> bool:
        return await self.broker.dead_letter(self, reason, detail)

    async def extend(self) -> bool:
        """Renew this delivery's lease; False if it was already lost."""
        return not await self.broker.extend([self])


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message in a queue's dead letters, with why it is there."""

    entry_id: str  # the engine's id for this entry (for replay and purge)
    queue: str
    message_id: str
    payload: bytes = field(repr=False)
    reason: DeadLetterReason
    detail: str
    delivery_count: int
    dead_lettered_at: float  # unix time
    priority: int = MIN_PRIORITY


#: Revocations are announced here (``messages.revocation`` is the format); ``revoke``
#: records them as well, so a worker that starts later still reads them.
REVOCATIONS = Topic(revocation.TOPIC)


class Broker(ABC):
    """A transport. Sync producer face, async consumer face, sync admin calls."""

    #: URL schemes this engine serves, e.g. ("memory",).
    schemes: tuple[str, ...] = ()
    #: Whether the engine keeps shared key-value state: ``reserve``/``release`` (idempotency
    #: keys) and ``acquire`` (cluster token buckets). An engine without it (RabbitMQ) raises
    #: ``ImproperlyConfigured`` from those verbs, naming the fix; the contract checks that.
    supports_key_value: ClassVar[bool] = True
    #: Whether priorities order the queue (9 first). Where they cannot (RabbitMQ 3.10
    #: quorum queues), messages are served FIFO and each keeps its priority as data.
    supports_priorities: bool = True
    #: Whether other processes (a prefork child, another worker, a producer elsewhere) reach
    #: the same queues through their own connection. False for an in-process engine
    #: (memory://): the worker then runs tasks in threads instead of prefork children.
    shares_across_processes: ClassVar[bool] = True
    #: Whether ``delayed_count(queue)`` counts ``queue``'s delayed messages only. False
    #: where every queue's wait together and cannot be told apart without reading each
    #: (RabbitMQ's shared delay queues): it then counts them all, whichever queue is named.
    delays_counted_per_queue: ClassVar[bool] = True

    def __init__(
        self,
        *,
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        wire_format: WireFormat | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.lease_seconds = lease_seconds
        self.delivery_limit = delivery_limit
        # What the engine dead-lettered on its own, until ``take_dead_lettered`` hands it
        # out (appended on the engine's thread, taken on the caller's: a deque is safe).
        self._handed_back: collections.deque[DeadLetter] = collections.deque(
            maxlen=HANDED_BACK_KEEP
        )
        #: How messages become this broker's payloads: the producer encodes with it, the
        #: worker decodes with it. The engine stores the bytes as they are.
        self.wire_format = NATIVE if wire_format is None else wire_format

    # -- producer ---------------------------------------------------------------------------
    @abstractmethod
    def publish(self, message: OutboundMessage) -> None:
        """Store one message; return once the broker holds it (an engine that pipelines
        confirms may return sooner: see ``flush``)."""

    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        """Store several messages, in as few round trips as the engine allows."""
        for message in messages:
            self.publish(message)

    @abstractmethod
    async def publish_async(self, message: OutboundMessage) -> None:
        """``publish`` for code running on an event loop."""

    async def publish_many_async(self, messages: Sequence[OutboundMessage]) -> None:
        for message in messages:
            await self.publish_async(message)

    def flush(self) -> None:
        """Return once every message this process published is held by the broker; raise
        ``BrokerError`` naming those it refused. An engine whose ``publish`` returns only
        once the message is stored has nothing to wait for."""
        return None

    async def flush_async(self) -> None:
        """``flush`` for code running on an event loop."""
        return None

    def adopt_loop(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Do the broker's I/O on ``loop``, the caller's running loop, from now until
        ``close_async``. A worker whose task bodies never run on its loop (threads,
        prefork, solo) offers it, so an engine that otherwise keeps an I/O thread of its
        own saves two thread hand-offs per call. False (the default): not taken."""
        return False

    def confirm_each_publish(self) -> None:
        """From now on ``publish`` returns only once the broker holds the message. The
        worker and beat call it: they go on (ack a task, record a run) only after what
        they published is stored."""
        return None

    # -- consumer ---------------------------------------------------------------------------
    @abstractmethod
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Wait up to ``timeout`` seconds for messages; return between 0 and ``limit``."""

    async def stop_fetching(self) -> None:
        """The caller will fetch no more (a worker shutting down): give back whatever was
        received ahead of a fetch, so other workers can run it meanwhile."""
        return None

    @abstractmethod
    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        """The outcome is final: remove the message. False if the lease was lost.

        ``batch=True``: nothing waits on this ack but the caller (its job has run), so the
        engine may hold it a few milliseconds to send it with others. Returns once the
        ack was sent either way; an engine whose protocol gives an ack no reply (RabbitMQ)
        may lose it to a crash right after, and the message comes again (at least once).
        ``settle_acks`` waits until the server has applied it.
        """

    async def settle_acks(self) -> None:
        """Return once the server has applied every ack this broker sent so far, so that
        a crash after this brings none of those messages back. For callers that promise
        more than at least once (a queue move: at most one message twice). Engines whose
        ack is a command with a reply (Redis) have applied it already."""
        return None

    @abstractmethod
    async def requeue(self, delivery: Delivery, *, count_delivery: bool = False) -> bool:
        """Give the message back now, as if this delivery had not happened.

        ``count_delivery=True`` keeps this delivery in the count instead (a task that asked
        to be requeued did run), so such a loop still ends at the delivery limit.
        """

    @abstractmethod
    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str = ""
    ) -> bool:
        """Move the message to its queue's dead letters with ``reason``."""

    @abstractmethod
    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        """Renew the leases of ``deliveries``; return those whose lease was already lost."""

    def take_dead_lettered(self) -> list[DeadLetter]:
        """The messages this engine moved to the dead letters on its own since the last
        call, oldest first: a lease that ran out at ``delivery_limit``, a message lost with
        a connection once too often, an entry other software wrote that cannot be handed
        out. Not those moved by ``dead_letter()`` (its caller knows them). Each is handed
        out once, in the process whose call made it; whoever fetches takes them after each
        fetch and tells those waiting on the calls (the worker does)."""
        taken: list[DeadLetter] = []
        with contextlib.suppress(IndexError):  # (taken meanwhile by another thread)
            while self._handed_back:
                taken.append(self._handed_back.popleft())
        return taken

    def _hand_back(self, letter: DeadLetter) -> None:
        """For engines: ``letter`` was dead-lettered by the engine itself, not through
        ``dead_letter()``; ``take_dead_lettered`` hands it to the caller."""
        self._handed_back.append(letter)

    # -- admin ------------------------------------------------------------------------------
    @abstractmethod
    def queue_length(self, queue: str) -> int:
        """Messages ready to be fetched (not delayed, not in flight)."""

    @abstractmethod
    def delayed_count(self, queue: str) -> int:
        """Messages waiting for their eta: ``queue``'s, or every queue's where the engine
        does not count them per queue (``delays_counted_per_queue``)."""

    @abstractmethod
    def purge(self, queue: str) -> int:
        """Drop the ready and delayed messages of ``queue``; return how many."""

    @abstractmethod
    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        """The oldest ``limit`` dead letters of ``queue``."""

    @abstractmethod
    def replay_dead_letters(self, queue: str, entry_ids: Sequence[str] | None = None) -> int:
        """Move dead letters (all, or those named) back to ``queue`` with a fresh count."""

    @abstractmethod
    def purge_dead_letters(self, queue: str) -> int:
        """Drop the dead letters of ``queue``; return how many."""

    # -- shared state: revocations, idempotency keys, token buckets -------------------------
    def revoke(
        self,
        task_ids: Sequence[str],
        ttl: float,
        *,
        terminate: bool = False,
        signal: str = "SIGTERM",
    ) -> None:
        """Record ``task_ids`` as revoked for ``ttl`` seconds and announce it on ``REVOCATIONS``.

        The record outlives worker restarts (a worker reads it with ``revoked_ids``); the
        announcement (``messages.revocation``) reaches the workers subscribed now, with
        ``terminate``/``signal``. Engines record and announce in one step where they can.
        """
        check_ttl(ttl, "a revocation's ttl")
        ids = list(dict.fromkeys(task_ids))  # each id once, in order
        if ids:
            self._revoke(ids, ttl, terminate, signal)
            if self.serves_wire_control:  # the wire format's own workers hear it too
                # ``recorded``: a celeriac worker hearing it there does not record it again.
                arguments = {"task_id": ids, "terminate": terminate, "signal": signal,
                             "recorded": True}  # fmt: skip
                self.publish_wire_command("revoke", arguments)

    @abstractmethod
    def _revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        """The engine's I/O for ``revoke``: ``ids`` are checked, unique and not empty."""

    @abstractmethod
    def revoked_ids(self) -> dict[str, float]:
        """The live revocations: task id -> unix time (this process's clock) it ends."""

    # -- events in the wire format's own protocol -----------------------------------------
    #: Whether the engine can publish events where the wire format's own clients read them
    #: (``publish_wire_events``): the engines whose queues Celery's clients share.
    carries_wire_events: ClassVar[bool] = False

    @property
    def publishes_wire_events(self) -> bool:
        """Whether events go to the wire format's event exchange too (Celery's
        ``celeryev`` with ``wire_format = "celery"``), beside celeriac's own channel."""
        return self.carries_wire_events and self.wire_format.events_exchange is not None

    def publish_wire_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Publish each event alone to the wire format's event exchange, transient and
        unconfirmed, as its own clients send them (only when ``publishes_wire_events``)."""
        raise NotImplementedError(f"{type(self).__name__} does not carry wire-format events")

    async def publish_wire_events_async(self, events: Sequence[Mapping[str, Any]]) -> None:
        """``publish_wire_events`` for code running on an event loop."""
        raise NotImplementedError(f"{type(self).__name__} does not carry wire-format events")

    @property
    def serves_wire_control(self) -> bool:
        """Whether a worker also takes remote-control commands from the wire format's own
        mailbox (Celery's ``celery.pidbox`` with ``wire_format = "celery"``)."""
        return self.carries_wire_events and self.wire_format.control_exchange is not None

    async def subscribe_wire_control(self, hostname: str) -> Subscription:
        """The commands sent to the wire format's mailbox, as ``hostname``'s queue there
        receives them: each payload is one command's body (only when
        ``serves_wire_control``)."""
        raise NotImplementedError(f"{type(self).__name__} does not carry wire-format control")

    def publish_wire_command(self, method: str, arguments: Mapping[str, Any]) -> None:
        """Broadcast a command to every worker reading the wire format's mailbox (a
        ``revoke`` for Celery's workers), wanting no reply."""
        raise NotImplementedError(f"{type(self).__name__} does not carry wire-format control")

    async def publish_wire_reply(self, exchange: str, routing_key: str, reply: WireParts) -> None:
        """Send a reply to a wire-format command where its caller waits for it."""
        raise NotImplementedError(f"{type(self).__name__} does not carry wire-format control")

    # -- the channel ------------------------------------------------------------------------
    def publish_topic(self, topic: Topic, payload: bytes) -> None:
        """Publish ``payload`` on ``topic``; returns once the broker took it. A broadcast
        reaches the subscribers listening now (none: it is dropped); a stream keeps it."""
        self._publish_topic(topic, checked_payload(payload))

    async def publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        """``publish_topic`` for code running on an event loop."""
        await self._publish_topic_async(topic, checked_payload(payload))

    async def subscribe(self, topic: Topic, *, history: bool = False) -> Subscription:
        """Follow ``topic`` on this event loop; live when it returns. ``history=True`` (stream
        topics) first hands out the payloads the topic still keeps, oldest first.

        Raises ``BrokerConnectionError`` when the broker cannot be reached.
        """
        if history and topic.kind is not ChannelKind.STREAM:
            raise ValueError(
                f"topic {topic.name!r} is a broadcast topic and keeps no history; "
                f"declare it Topic({topic.name!r}, kind='stream') to read one"
            )
        return await self._subscribe(topic, history)

    @abstractmethod
    def _publish_topic(self, topic: Topic, payload: bytes) -> None:
        """The engine's I/O for ``publish_topic``."""

    @abstractmethod
    async def _publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        """The engine's I/O for ``publish_topic_async``."""

    @abstractmethod
    async def _subscribe(self, topic: Topic, history: bool) -> Subscription:
        """The engine's subscription; ``history`` only for a stream topic."""

    @abstractmethod
    def reserve(self, key: str, value: str, ttl: float) -> str | None:
        """Atomically store ``value`` under ``key`` for ``ttl`` seconds if ``key`` is free.

        None when stored; else the value already held (nothing changed).
        """

    def reserve_many(self, items: Sequence[tuple[str, str]], ttl: float) -> list[str | None]:
        """``reserve`` for each ``(key, value)``, in as few round trips as the engine allows;
        the answers in the same order (beat reserves a tick's runs at once)."""
        return [self.reserve(key, value, ttl) for key, value in items]

    @abstractmethod
    def release(self, key: str, value: str) -> bool:
        """Free ``key`` if it still holds ``value`` (a reservation whose work failed)."""

    @abstractmethod
    async def acquire(self, key: str, rate: float, capacity: float) -> float:
        """Take one token from the shared bucket ``key`` (``rate`` tokens/s, at most
        ``capacity``; a new bucket starts full): 0.0 when taken, else the seconds until one
        will be there (nothing taken). Every worker on this broker shares the bucket.
        """

    # -- leases: one holder at a time, cluster-wide (beat's leader) ------------------------
    def hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """Take the lease ``name`` for ``holder``, or renew it when ``holder`` has it, for
        ``ttl`` seconds: its fencing token when held, None while another holder has it.

        The token grows each time the lease passes to a new holder and stays the same
        while one holder renews, so work stamped with it can be ordered. A holder that
        stops renewing loses the lease once ``ttl`` has passed on the broker's side.
        """
        check_ttl(ttl, "a lease's ttl")
        if not isinstance(name, str) or not name or not isinstance(holder, str) or not holder:
            raise ValueError("a lease needs a non-empty name and holder (strings)")
        return self._hold_lease(name, holder, ttl)

    @abstractmethod
    def _hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        """The engine's I/O for ``hold_lease``: arguments are checked."""

    @abstractmethod
    def drop_lease(self, name: str, holder: str) -> bool:
        """Give the lease up if ``holder`` has it (a clean stop: another may take it at
        once); False when it was not held by ``holder``."""

    def check_safety(self) -> str | None:
        """Run once at worker start: a warning about a risky engine setup, or None.

        May raise ``ImproperlyConfigured`` when the setup must not be used.
        """
        return None

    def check_time_limit(self, longest: float | None) -> str | None:
        """Run once at worker start with the longest hard time limit configured (None: no
        limit): a warning when a task that long would trip an engine limit, or None."""
        return None

    def close(self) -> None:
        """Release connections held by the sync face."""
        return None

    async def close_async(self) -> None:
        """Release connections held by the async face."""
        return None
