"""Every RabbitMQ name celeriac uses, the arguments of each queue, and how a delay is routed.

This docstring is the topology (``Q`` is a celeriac queue name; ``celeriac`` below is the
``namespace`` transport option, so that apps sharing a vhost can keep apart):

- ``Q``: the ready queue, durable. Classic with ``x-max-priority`` 9 (the
  ``max_priority`` the broker is given; none for 0 or None), or quorum with
  ``x-delivery-limit`` and native dead-lettering into ``celeriac.dead.Q``.
- ``celeriac.dead.Q``: Q's dead letters; each carries the reason in its headers.
- ``celeriac.delay-level.K`` for K in 0..31: delay level K, one queue shared by every ready
  queue, whose every message waits ``UNIT_MS * 2**K`` ms (``x-message-ttl``) and is then
  dead-lettered to exchange ``celeriac.delay-bit.(K-1)``. Quorum with at-least-once
  dead-lettering where the server has it (RabbitMQ 3.10+), else classic; the broker may be
  given a type for them (``params.QueueTypes``).
- ``celeriac.delay-bit.K`` (topic exchanges) route a delayed message down the levels: the
  routing key is the delay's 32 bits, highest first, then Q. Exchange K sends the message
  to queue ``celeriac.delay-level.K`` when bit K is 1, else on to exchange K-1;
  ``celeriac.delay.deliver``, bound to each Q by ``*.`` * 32 then Q, finally routes it into
  Q. A message waits exactly its delay (rounded up to UNIT_MS), and every level queue holds
  messages of one TTL, so none ever waits behind a longer one. Which queue a waiting
  message is for is read from its routing key (``delayed_queue_of``).
- Before these, each Q had 32 level queues of its own, ``celeriac.delay.Q.K``, routed by
  exchanges ``celeriac.delay.K`` (``OldLayout``). Those names are not used for new
  messages: what they still hold drains into ``celeriac.delay.deliver`` as before, and
  old and new versions never route one message twice.
- ``celeriac.broadcast`` (direct): the channel's broadcast topics, the routing key being
  the topic name (``channel``); the stream ``celeriac.revocations`` is bound to it with the
  revocations topic's name, so it keeps every revoke for workers that start later.
- ``celeriac.events`` (topic): the channel's stream topics, each bound by its name to the
  stream ``celeriac.stream.<topic>``.
- ``celeriac.lease.<name>``: a lease (``hold_lease``), an exclusive queue: the connection
  that declared it holds the lease until it closes or RabbitMQ ends it for missed
  heartbeats. ``celeriac.lease.<name>.token`` (durable) keeps its last fencing token.

Queues shared with kombu's clients (``SharedQueues``, when the broker is given them:
``wire_format = "celery"``): each ready queue ``Q`` is declared exactly as kombu declares
it, so that either side may declare it first: its exchange (durable; by default a direct
exchange named ``Q``), ``Q`` with only the arguments kombu gives it (none for a classic
queue, ``x-queue-type: quorum`` for a quorum one, ``x-max-priority`` when set), and the
binding with its routing key. A new message goes where kombu sends it (``route``). Every
other name above stays celeriac's, and ``Q`` is also bound to ``celeriac.delay.deliver``.

Engine helper: imports the stdlib only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

LEVELS = 32  # delay levels; level K waits UNIT_MS * 2**K milliseconds
UNIT_MS = 10  # delays are rounded up to this many milliseconds (never early)
MAX_DELAY = UNIT_MS * (2**LEVELS - 1) / 1000  # seconds (about 497 days)
MAX_PRIORITY = 9
# Headers celeriac writes on every message it publishes (all start with HEADER_PREFIX).
HEADER_PREFIX = "x-celeriac-"
H_ID = "x-celeriac-id"  # the celeriac message id (the AMQP message_id is unique per copy)
H_DELIVERIES = "x-celeriac-deliveries"  # hand-outs before this copy was published
# Headers of a dead letter.
H_REASON = "x-celeriac-reason"
H_DETAIL = "x-celeriac-detail"
H_COUNT = "x-celeriac-count"
H_DEAD_AT = "x-celeriac-dead-at"  # unix time, milliseconds


class Names:
    """Every name celeriac owns in a vhost starts with the ``namespace`` transport option."""

    def __init__(self, namespace: str = "celeriac") -> None:
        if not namespace or any(c in namespace for c in "*#"):
            raise ValueError("namespace must be a non-empty name without '*' or '#'")
        self.namespace = namespace
        self.broadcast = f"{namespace}.broadcast"
        self.events = f"{namespace}.events"
        self.revocations = f"{namespace}.revocations"
        self.deliver = f"{namespace}.delay.deliver"

    def stream_queue(self, topic: str) -> str:
        return f"{self.namespace}.stream.{topic}"

    def lease_queue(self, name: str) -> str:
        return f"{self.namespace}.lease.{name}"

    def lease_token_queue(self, name: str) -> str:
        return f"{self.namespace}.lease.{name}.token"

    def dead_queue(self, queue: str) -> str:
        return f"{self.namespace}.dead.{queue}"

    def delay_queue(self, level: int) -> str:
        """The level queue ``level``, shared by every ready queue. Not ``<ns>.delay.X.K``,
        which the per-queue layout before it gave queue ``X``'s level K."""
        return f"{self.namespace}.delay-level.{level}"

    def delay_exchange(self, level: int) -> str:
        return self.deliver if level < 0 else f"{self.namespace}.delay-bit.{level}"

    def delay_route(self, units: int, queue: str) -> tuple[str, str]:
        """(exchange, routing key) that makes a message wait ``units`` and land in ``queue``."""
        bits = ".".join("1" if units >> k & 1 else "0" for k in range(LEVELS - 1, -1, -1))
        return self.delay_exchange(units.bit_length() - 1), f"{bits}.{queue}"

    def level_binding(self, level: int) -> tuple[str, str]:
        """(destination exchange, binding key) from exchange ``level`` to the next one down."""
        return self.delay_exchange(level - 1), f"{_prefix(level)}0.#"


class OldLayout:
    """The per-queue delay queues of earlier versions, which a vhost may still hold:
    ``<ns>.delay.Q.K``, each bound to exchange ``<ns>.delay.K``. Counted and purged
    until they are deleted (docs/brokers/rabbitmq.md says how)."""

    def __init__(self, names: Names) -> None:
        self.namespace = names.namespace

    def queue(self, queue: str, level: int) -> str:
        return f"{self.namespace}.delay.{queue}.{level}"

    def exchange(self, level: int) -> str:
        return f"{self.namespace}.delay.{level}"


def check_queue_name(queue: str) -> None:
    if not queue or "*" in queue or "#" in queue or len(queue.encode()) > 2 * LEVELS + 127:
        raise ValueError(
            f"queue name {queue!r} cannot be used on RabbitMQ: it must be non-empty, at most "
            f"{2 * LEVELS + 127} bytes, without '*' or '#'"
        )


def delay_units(delay: float) -> int:
    """A delay in seconds as whole UNIT_MS units, rounded up so a message is never early."""
    if delay > MAX_DELAY:
        raise ValueError(
            f"a delay of {delay:.0f} s is longer than RabbitMQ delay queues can hold "
            f"({MAX_DELAY:.0f} s); schedule it closer to its time"
        )
    return max(1, math.ceil(delay * 1000 / UNIT_MS - 1e-9))


def _prefix(level: int) -> str:
    """The binding-key words before bit ``level`` in a delay routing key."""
    return "*." * (LEVELS - 1 - level)


def level_queue_binding(level: int) -> str:
    """The binding key from exchange ``level`` to level queue ``level``: bit ``level`` is 1,
    whatever the lower bits and the queue."""
    return f"{_prefix(level)}1.#"


def delayed_queue_of(routing_key: str) -> str:
    """The ready queue a waiting message is for: its routing key after the 32 bits (a
    dead-lettered message keeps the key it was published with)."""
    return routing_key[2 * LEVELS :]


def deliver_binding(queue: str) -> str:
    return f"{'*.' * LEVELS}{queue}"


def _quorum(extra: dict[str, Any]) -> dict[str, Any]:
    return {"x-queue-type": "quorum", **extra}


def ready_arguments(
    dead_queue: str, queue_type: str, delivery_limit: int, max_priority: int | None = MAX_PRIORITY
) -> dict[str, Any]:
    if queue_type == "quorum":
        # RabbitMQ counts returns itself here; its limit is the backstop behind ours, and
        # what it dead-letters lands in our dead-letter queue (at-least-once).
        return _quorum(
            {
                "x-delivery-limit": delivery_limit,
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead_queue,
                "x-dead-letter-strategy": "at-least-once",
                "x-overflow": "reject-publish",
            }
        )
    # task_queue_max_priority: 9 by default; None (or 0), a queue without priorities.
    return {"x-max-priority": max_priority} if max_priority else {}


def dead_arguments(queue_type: str) -> dict[str, Any]:
    return _quorum({}) if queue_type == "quorum" else {}


def delay_arguments(level: int, next_exchange: str, queue_type: str) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "x-message-ttl": UNIT_MS * 2**level,
        "x-dead-letter-exchange": next_exchange,
    }
    if queue_type == "quorum":
        arguments.update(
            {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        )
        return _quorum(arguments)
    return arguments


def revocation_arguments(retention: str) -> dict[str, Any]:
    # Small segments, so retention drops old revocations soon after they end.
    return {
        "x-queue-type": "stream",
        "x-max-age": retention,
        "x-stream-max-segment-size-bytes": 1_000_000,
    }


@dataclass(frozen=True)
class Binding:
    """A shared queue's declaration as kombu makes it: its exchange, the exchange's type,
    the routing key binding the queue to it, and the queue's arguments."""

    exchange: str
    exchange_type: str = "direct"
    routing_key: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)

    @property
    def queue_type(self) -> str:
        return "quorum" if self.arguments.get("x-queue-type") == "quorum" else "classic"


@dataclass(frozen=True)
class SharedQueues:
    """Ready queues declared and published to as kombu (Celery) does: ``bindings`` for the
    app's queues; any other queue is made as kombu makes a missing one, a direct exchange
    of its name bound by its name, with ``missing_arguments``."""

    bindings: Mapping[str, Binding] = field(default_factory=dict)
    missing_arguments: Mapping[str, Any] = field(default_factory=dict)

    def of(self, queue: str) -> Binding:
        found = self.bindings.get(queue)
        if found is not None:
            return found
        return Binding(queue, "direct", queue, dict(self.missing_arguments))

    def route(self, queue: str) -> tuple[str, str]:
        """(exchange, routing key) a new message for ``queue`` is published with: kombu
        sends to a direct exchange's queue through the default exchange by the queue's
        name, and through the exchange with the queue's routing key otherwise."""
        binding = self.of(queue)
        if binding.exchange_type == "direct" or not binding.exchange:
            return "", queue
        return binding.exchange, binding.routing_key

    @property
    def missing_type(self) -> str:
        """The type of a queue made on first use."""
        return "quorum" if self.missing_arguments.get("x-queue-type") == "quorum" else "classic"

    def types(self) -> dict[str, str]:
        """Each declared queue's type, as its arguments say."""
        return {name: binding.queue_type for name, binding in self.bindings.items()}
