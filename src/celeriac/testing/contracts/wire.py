"""The wire-format contract: a broker built with any ``WireFormat`` carries its payloads.

Mixed into an engine's contract test class beside ``BrokerContract``; its ``make_broker``
factory must accept ``wire_format``. A test format whose payloads hold NUL bytes, bytes
that are not UTF-8 and no ``CLR1`` prefix goes through publish, a delay, a requeue and
the dead letters, and must come back byte for byte; so must one that splits its payloads
into a body, headers and properties (``WireFormat.split``/``join``: an engine with
headers carries them apart, one without stores the payload), and Celery's format must
give back every message as it was. Imports the seams, ``messages`` and the stdlib.
"""

from __future__ import annotations

import asyncio
import time
import uuid
import zlib
from typing import Protocol

from celeriac.brokers.base import Broker, DeadLetterReason, Delivery, OutboundMessage
from celeriac.exceptions import DecodeError
from celeriac.messages.celery import CELERY
from celeriac.messages.envelope import Message
from celeriac.messages.wire import WireFormat, WireParts


class WireBrokerFactory(Protocol):
    def __call__(
        self,
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        wire_format: WireFormat | None = None,
    ) -> Broker: ...


class CompressedFormat(WireFormat):
    """Not celeriac's envelope: a marker byte, then the envelope deflated (binary bytes)."""

    name = "contract-test"

    def encode(self, message: Message) -> bytes:
        return b"\x00\xff" + zlib.compress(message.encode())

    def decode(self, payload: bytes) -> Message:
        if payload[:2] != b"\x00\xff":
            raise DecodeError("not a contract-test payload")
        return Message.decode(zlib.decompress(payload[2:]))


class PartsFormat(CompressedFormat):
    """``CompressedFormat``'s payloads, split into a body, a header and two properties
    that an engine with headers carries apart from it."""

    name = "contract-parts"

    def split(self, payload: bytes) -> WireParts:
        head, body = payload[:6], payload[6:]
        return WireParts(
            body,
            {"contract-head": head.hex(), "contract-n": len(body)},
            {"content_type": "application/x-contract", "reply_to": "contract"},
        )

    def join(self, parts: WireParts) -> bytes:
        head = bytes.fromhex(str(parts.headers.get("contract-head", "")))
        return head + parts.body


def _message(n: int) -> Message:
    headers = {"id": f"wire-{uuid.uuid4().hex[:8]}-{n}", "task": "contract.task"}
    return Message(headers, b"\x00\x01\xfe body \xe2\x98", "application/x-test", "binary")


async def _one(broker: Broker, queue: str, timeout: float = 10.0) -> Delivery:
    give_up = time.monotonic() + timeout
    while time.monotonic() < give_up:
        got = await broker.fetch([queue], 1, give_up - time.monotonic())
        if got:
            return got[0]
    raise AssertionError(f"no delivery from {queue} within {timeout}s")


class WireFormatContract:
    """Needs the ``make_broker`` fixture of the class it is mixed into."""

    def test_payloads_of_another_wire_format_round_trip(
        self, make_broker: WireBrokerFactory
    ) -> None:
        codec = CompressedFormat()
        broker = make_broker(wire_format=codec)
        assert broker.wire_format is codec
        asyncio.run(self._round_trip(broker, f"contract-wire-{uuid.uuid4().hex[:12]}"))

    def test_payloads_split_into_parts_round_trip(self, make_broker: WireBrokerFactory) -> None:
        broker = make_broker(wire_format=PartsFormat())
        asyncio.run(self._round_trip(broker, f"contract-parts-{uuid.uuid4().hex[:12]}"))

    def test_celerys_wire_format_round_trips(self, make_broker: WireBrokerFactory) -> None:
        broker = make_broker(wire_format=CELERY)
        asyncio.run(self._round_trip(broker, f"contract-celery-{uuid.uuid4().hex[:12]}"))

    @staticmethod
    async def _round_trip(broker: Broker, queue: str) -> None:
        try:
            first, later = _message(1), _message(2)
            for message, delay in ((first, None), (later, 0.2)):
                payload = broker.wire_format.encode(message)
                broker.publish(OutboundMessage(queue, payload, message.id, delay=delay))
            held = await _one(broker, queue)
            assert broker.wire_format.decode(held.payload) == first
            due = await _one(broker, queue)  # the delayed one, once due
            assert broker.wire_format.decode(due.payload) == later
            assert await held.requeue() is True
            again = await _one(broker, queue)  # given back: the same bytes
            assert again.payload == held.payload
            assert await again.dead_letter(DeadLetterReason.REJECTED, "contract") is True
            [letter] = broker.dead_letters(queue)
            assert broker.wire_format.decode(letter.payload) == first
            assert await due.ack() is True
        finally:
            await broker.close_async()
