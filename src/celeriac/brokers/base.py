"""The ``Broker`` seam: the verbs every transport implements natively, and their data types.

Imports only leaves. Engines (memory, redis, amqp) subclass ``Broker``; the worker and
the producer use only what is here. Adapters take constructor arguments, never ``app.conf``.

Semantics every engine keeps (``celeriac.testing.contracts`` checks them):
- ``publish`` returns once the broker holds the message; a ``delay`` waits broker-side,
  measured by the broker's own clock (Redis server time), never a worker's.
- ``fetch`` hands out at most ``limit`` messages, higher priority first, FIFO within a
  priority; each handed-out message holds a lease of ``lease_seconds``.
- A lease that is not extended expires: the message is handed out again with its
  ``delivery_count`` raised, or dead-lettered (``DELIVERY_LIMIT``) once the count reached
  ``delivery_limit``. A live holder that keeps calling ``extend`` never loses its lease.
- ``ack``/``requeue``/``dead_letter``/``extend`` on a delivery whose lease was lost (taken
  over after expiry) are refused: they return False and change nothing (fencing).
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field

MIN_PRIORITY = 0
MAX_PRIORITY = 9  # higher number = served first, on every engine


class DeadLetterReason(str, enum.Enum):
    """Why a message went to the dead letters."""

    MALFORMED = "malformed"  # the payload could not be decoded
    UNKNOWN_TASK = "unknown_task"  # no task of that name is registered
    CONTENT_DISALLOWED = "content_disallowed"  # content type not in accept_content
    OVERSIZED = "oversized"  # larger than the configured maximum
    SIGNATURE_INVALID = "signature_invalid"  # message signing check failed
    DELIVERY_LIMIT = "delivery_limit"  # handed out delivery_limit times, no outcome
    WORKER_LOST = "worker_lost"  # the process running it died delivery_limit times
    REJECTED = "rejected"  # the task raised Reject(requeue=False)


def check_priority(priority: int) -> None:
    if not isinstance(priority, int) or not MIN_PRIORITY <= priority <= MAX_PRIORITY:
        raise ValueError(
            f"priority must be an integer from {MIN_PRIORITY} to {MAX_PRIORITY} "
            f"({MAX_PRIORITY} is served first), not {priority!r}"
        )


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

    async def ack(self) -> bool:
        return await self.broker.ack(self)

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


class Broker(ABC):
    """A transport. Sync producer face, async consumer face, sync admin calls."""

    #: URL schemes this engine serves, e.g. ("memory",).
    schemes: tuple[str, ...] = ()

    def __init__(self, *, lease_seconds: float = 30.0, delivery_limit: int = 5) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        if delivery_limit < 1:
            raise ValueError("delivery_limit must be at least 1")
        self.lease_seconds = lease_seconds
        self.delivery_limit = delivery_limit

    # -- producer ---------------------------------------------------------------------------
    @abstractmethod
    def publish(self, message: OutboundMessage) -> None:
        """Store one message; return once the broker holds it."""

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

    # -- consumer ---------------------------------------------------------------------------
    @abstractmethod
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        """Wait up to ``timeout`` seconds for messages; return between 0 and ``limit``."""

    @abstractmethod
    async def ack(self, delivery: Delivery) -> bool:
        """The outcome is final: remove the message. False if the lease was lost."""

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

    # -- admin ------------------------------------------------------------------------------
    @abstractmethod
    def queue_length(self, queue: str) -> int:
        """Messages ready to be fetched (not delayed, not in flight)."""

    @abstractmethod
    def delayed_count(self, queue: str) -> int:
        """Messages waiting for their eta."""

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

    def check_safety(self) -> str | None:
        """Run once at worker start: a warning about a risky engine setup, or None.

        May raise ``ImproperlyConfigured`` when the setup must not be used.
        """
        return None

    def close(self) -> None:
        """Release connections held by the sync face."""
        return None

    async def close_async(self) -> None:
        """Release connections held by the async face."""
        return None
