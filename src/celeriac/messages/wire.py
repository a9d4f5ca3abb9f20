"""Wire formats: how a ``Message`` becomes the bytes a broker stores, and back.

A ``WireFormat`` is handed to each broker engine when it is built (``wire_format=``), and
the producer and the worker encode and decode through the broker's. The app picks it by
name with the ``wire_format`` setting (``app/connections.py``): ``"celeriac"``, the
``CLR1`` envelope, or ``"celery"``, Celery's task protocol 2 (``messages.celery``).

The payload (bytes) is what crosses the ``Broker`` seam. An engine whose transport carries
headers and properties beside a body (AMQP) does not store the payload as one body: it
asks the format to ``split`` it into ``WireParts`` when it publishes and to ``join`` the
parts it receives back into the payload, so that another client reading the same queue
finds each field where its protocol puts it. A format whose messages are one body (the
native one) keeps the defaults: the whole payload is the body. Engines without headers
never call either. Pure logic: imports ``messages.envelope`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celeriac.messages.envelope import Message


@dataclass(frozen=True, slots=True)
class WireParts:
    """A payload as a transport with headers carries it.

    ``properties`` are AMQP's basic properties by their names (``content_type``,
    ``content_encoding``, ``correlation_id``, ``reply_to``, ...). The engine adds its own
    headers (and its routing, priority and delivery mode) when it publishes, and leaves
    them out again before ``join``.
    """

    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)


class WireFormat(ABC):
    """Turns messages into broker payloads and back. One instance serves many threads."""

    #: The ``wire_format`` setting's value that selects it.
    name: str = ""

    @abstractmethod
    def encode(self, message: Message) -> bytes:
        """The payload a broker stores for ``message``."""

    @abstractmethod
    def decode(self, payload: bytes) -> Message:
        """The message in ``payload``; raise ``DecodeError`` naming what is wrong."""

    def split(self, payload: bytes) -> WireParts:
        """``payload`` as body, headers and properties, for an engine that carries them.
        By default the payload is the body, with nothing beside it."""
        return WireParts(payload)

    def join(self, parts: WireParts) -> bytes:
        """The payload of a message received as ``parts`` (``split`` undone; for a message
        another client published, the payload ``decode`` reads it from). By default the
        body. Never raises: what cannot be read is ``decode``'s to report."""
        return parts.body

    @property
    def joins_body_only(self) -> bool:
        """Whether ``join`` is the default one, which reads the body alone: an engine then
        skips gathering each received message's headers and properties for it."""
        return type(self).join is WireFormat.join

    #: The exchange where other clients of this format read events (None: the format has
    #: no event protocol of its own; events travel only on celeriac's channel).
    events_exchange: str | None = None

    def event_parts(self, event: Mapping[str, Any]) -> tuple[str, WireParts]:
        """(routing key, parts) of one event as this format's own clients send it; only
        for a format with an ``events_exchange``."""
        raise NotImplementedError(f"the {self.name!r} wire format has no events of its own")

    #: The fanout exchange where this format's clients send remote-control commands, one
    #: queue per worker (None: the format has no remote control of its own).
    control_exchange: str | None = None

    def control_command_parts(self, method: str, arguments: Mapping[str, Any]) -> WireParts:
        """A command broadcast to this format's workers, wanting no reply; only for a
        format with a ``control_exchange``."""
        raise NotImplementedError(f"the {self.name!r} wire format has no remote control")

    def control_reply_parts(self, ticket: str, hostname: str, reply: Any) -> WireParts:
        """One worker's reply to a command, as this format's workers send it; only for a
        format with a ``control_exchange``."""
        raise NotImplementedError(f"the {self.name!r} wire format has no remote control")


class NativeWireFormat(WireFormat):
    """celeriac's own envelope: ``b"CLR1" | meta length | meta JSON | body`` (``Message``)."""

    name = "celeriac"

    def encode(self, message: Message) -> bytes:
        return message.encode()

    def decode(self, payload: bytes) -> Message:
        return Message.decode(payload)


NATIVE = NativeWireFormat()
