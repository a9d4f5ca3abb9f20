"""Wire formats: how a ``Message`` becomes the bytes a broker stores, and back.

A ``WireFormat`` is handed to each broker engine when it is built (``wire_format=``), and
the producer and the worker encode and decode through the broker's. The app picks it by
name with the ``wire_format`` setting (``app/connections.py``); ``"celeriac"``, the ``CLR1``
envelope, is the one there is. Pure logic: imports ``messages.envelope`` only.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from celeriac.messages.envelope import Message


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


class NativeWireFormat(WireFormat):
    """celeriac's own envelope: ``b"CLR1" | meta length | meta JSON | body`` (``Message``)."""

    name = "celeriac"

    def encode(self, message: Message) -> bytes:
        return message.encode()

    def decode(self, payload: bytes) -> Message:
        return Message.decode(payload)


NATIVE = NativeWireFormat()
