"""``CeleryWire``: one task message as Celery's side of a broker carries it.

On RabbitMQ these are the AMQP message's parts: the body, the headers table, the basic
properties (``content_type`` and ``content_encoding`` among them, kept apart here as kombu
keeps them) and the exchange and routing key it was published with. On Redis, kombu's
transport stores the same parts in one JSON document (``kombu_redis``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CeleryWire:
    """A Celery task message: body bytes, headers, properties and routing."""

    body: bytes
    headers: dict[str, Any]
    #: ``correlation_id``, ``reply_to``, ``priority``, ``delivery_mode`` and, when set,
    #: ``expiration`` (a per-message time to live in milliseconds, as text).
    properties: dict[str, Any] = field(default_factory=dict)
    content_type: str = "application/json"
    content_encoding: str = "utf-8"
    #: Where it was published: ``exchange`` (``""``, the default exchange, for a queue by
    #: name) and ``routing_key`` (then the queue's name).
    delivery_info: dict[str, Any] = field(default_factory=dict)
    #: The tag kombu's virtual transports (Redis among them) give each message.
    delivery_tag: str | None = None

    @property
    def exchange(self) -> str:
        return str(self.delivery_info.get("exchange") or "")

    @property
    def routing_key(self) -> str:
        return str(self.delivery_info.get("routing_key") or "")
