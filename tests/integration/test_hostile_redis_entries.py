"""Property test on the real Redis: stream entries written by any software (fields missing,
counts that are not numbers, text that is not UTF-8) never break a fetch. Each one is
handed out as a message or dead-lettered once as malformed, naming the field, and the
valid message beside it is always handed out."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis.keys import QueueKeys

pytestmark = pytest.mark.requires_service("redis")

counts = st.one_of(
    st.integers(-5, 2**40).map(str), st.floats().map(repr), st.binary(max_size=6),
    st.sampled_from(["abc", "1e400", "0x10", "inf", "nan", " 1", "2.5", ""]),
)  # fmt: skip
entries = st.fixed_dictionaries(
    {},
    optional={"m": st.binary(max_size=12) | st.text(max_size=12), "p": st.binary(max_size=40),
              "d": counts, "y": counts, "z": st.binary(max_size=4)},
)  # fmt: skip


@pytest.fixture
def broker(redis_url: str, redis_prefix: str) -> Iterator[tuple[RedisBroker, Any]]:
    made = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})
    loop = asyncio.new_event_loop()
    try:
        yield made, loop
    finally:
        loop.run_until_complete(made.close_async())
        loop.close()
        made.close()


@settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(entries, st.integers(0, 3))
@example({"m": b"x", "p": b"y", "d": "abc"}, 0)  # tonumber() is nil: the script used to fail
@example({"m": b"x", "p": b"y", "y": "high"}, 3)  # a priority that is not a number
@example({"m": b"\xff\xfe", "p": b"y"}, 0)  # an id that is not UTF-8
@example({"p": b"y"}, 1)
def test_a_hostile_stream_entry_is_handed_out_or_dead_lettered_once(
    broker: tuple[RedisBroker, Any], fields: dict[str, Any], level: int
) -> None:
    engine, loop = broker
    queue = f"q{uuid.uuid4().hex[:8]}"
    keys = QueueKeys(engine.prefix, queue)
    engine.publish(OutboundMessage(queue, b"valid", "valid-1"))  # (creates the group)
    client: redis.Redis = engine.client
    if fields:
        client.xadd(keys.stream(level), fields)

    deliveries = loop.run_until_complete(engine.fetch([queue], 10, 0.05))
    letters = engine.dead_letters(queue)

    payloads = [d.payload for d in deliveries]
    assert b"valid" in payloads
    hostile_out = len(deliveries) - 1 + len(letters)
    assert hostile_out == (1 if fields else 0)
    for delivery in deliveries:
        assert 0 <= delivery.priority <= 9 and delivery.delivery_count >= 1
        assert isinstance(delivery.message_id, str)
        loop.run_until_complete(delivery.ack())
    for letter in letters:
        assert letter.reason is DeadLetterReason.MALFORMED
        assert letter.detail.startswith("stream entry ")


ints = st.integers(-(2**63), 2**63 - 1)
# Members as publish_delayed packs them (id, level, priority, payload, sequence: msgpack
# values one after another), with each part of any type, or any bytes at all.
members = st.binary(max_size=40) | st.tuples(
    st.text(max_size=6) | ints, st.integers(-2, 5) | st.text(max_size=2),
    st.integers(-2, 12) | st.floats(), st.binary(max_size=10) | ints, ints,
).map(lambda parts: b"".join(msgpack.packb(part) for part in parts))  # fmt: skip


@settings(
    max_examples=60, deadline=None, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip
@given(members)
@example(b"garbage")  # unpacks as numbers: the script used to index a key that is not there
@example(b"\xc1")  # not msgpack at all
def test_a_hostile_delayed_member_is_promoted_or_dead_lettered_once(
    broker: tuple[RedisBroker, Any], member: bytes
) -> None:
    engine, loop = broker
    queue = f"q{uuid.uuid4().hex[:8]}"
    keys = QueueKeys(engine.prefix, queue)
    engine.publish(OutboundMessage(queue, b"valid", "valid-1"))
    engine.client.zadd(keys.delayed, {member: 0})  # due long ago

    deliveries = loop.run_until_complete(engine.fetch([queue], 10, 0.05))
    letters = engine.dead_letters(queue)

    assert b"valid" in [d.payload for d in deliveries]
    assert len(deliveries) - 1 + len(letters) == 1
    assert engine.delayed_count(queue) == 0
    for letter in letters:
        assert letter.reason is DeadLetterReason.MALFORMED
        assert letter.detail == "delayed entry is not one celeriac wrote"
