"""The kombu-layout engine against kombu itself: the keys and values it writes are the ones
kombu's Redis transport reads and writes, checked in Redis and through a kombu peer
(``kombu_peer.py``, run with Celery's Python) on the same Redis and global_keyprefix.

Skipped without that Python (``CELERIAC_CELERY_PYTHON``, or Celery's reference venv).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac.app.connections import create_broker
from celeriac.brokers.base import Delivery, OutboundMessage
from celeriac.brokers.kombu_redis import KombuRedisBroker
from celeriac.messages.envelope import Message
from celeriac.messages.wire import WireFormat, WireParts

CELERY_PYTHON = Path(os.environ.get("CELERIAC_CELERY_PYTHON", "/work/celery-ref/.venv/bin/python"))
PEER = Path(__file__).with_name("kombu_peer.py")
SEP = "\x06\x16"

pytestmark = pytest.mark.skipif(
    not CELERY_PYTHON.exists(), reason=f"no Python with kombu at {CELERY_PYTHON}"
)


@pytest.fixture
def raw(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def make(redis_url: str, redis_prefix: str) -> Iterator[Any]:
    made: list[KombuRedisBroker] = []

    def build(
        visibility: float = 3600.0, wire_format: WireFormat | None = None
    ) -> KombuRedisBroker:
        options = {"global_keyprefix": redis_prefix, "visibility_timeout": visibility}
        broker = create_broker("kombu+" + redis_url, options, 5, wire_format=wire_format)
        assert isinstance(broker, KombuRedisBroker)
        made.append(broker)
        return broker

    yield build
    for broker in made:
        broker.close()


def kombu(redis_url: str, prefix: str, *step: str) -> dict[str, Any]:
    done = subprocess.run(
        [str(CELERY_PYTHON), str(PEER), redis_url, prefix, *step],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def fetch(broker: KombuRedisBroker, queue: str, count: int = 1) -> list[Delivery]:
    async def run() -> list[Delivery]:
        got: list[Delivery] = []
        give_up = time.monotonic() + 5
        try:
            while len(got) < count and time.monotonic() < give_up:
                got += await broker.fetch([queue], count - len(got), 1.0)
        finally:
            await broker.close_async()
        return got

    got = asyncio.run(run())
    assert len(got) == count
    return got


def settle(broker: KombuRedisBroker, step: Any) -> Any:
    async def run() -> Any:
        try:
            return await step()
        finally:
            await broker.close_async()

    return asyncio.run(run())


def new_queue() -> str:
    return f"layout-{uuid.uuid4().hex[:8]}"


def test_kombu_reads_what_celeriac_published_in_its_priority_order(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(), new_queue()
    broker.publish(OutboundMessage(queue, b"low \x00\xff", "m-low"))  # celeriac's default: 0
    broker.publish(OutboundMessage(queue, b"high", "m-high", priority=9))
    # Celeriac's priority 9 is kombu's 0 (the queue's own list, served first); its 0 is
    # kombu's 9 (the last list).
    [high] = raw.lrange(f"{redis_prefix}{queue}", 0, -1)
    [low] = raw.lrange(f"{redis_prefix}{queue}{SEP}9", 0, -1)
    envelope = json.loads(low)
    assert envelope["content-type"] == "application/data"
    assert envelope["content-encoding"] == "binary"
    assert base64.b64decode(envelope["body"]) == b"low \x00\xff"
    properties = envelope["properties"]
    assert properties["delivery_info"] == {"exchange": "", "routing_key": queue}
    assert (properties["priority"], properties["body_encoding"]) == (9, "base64")
    assert str(uuid.UUID(properties["delivery_tag"])) == properties["delivery_tag"]
    assert json.loads(high)["properties"]["priority"] == 0

    first = kombu(redis_url, redis_prefix, "get", queue)
    second = kombu(redis_url, redis_prefix, "get", queue)
    assert base64.b64decode(first["body"]) == b"high"
    assert base64.b64decode(second["body"]) == b"low \x00\xff"
    assert second["delivery_tag"] == properties["delivery_tag"]
    assert second["properties"]["correlation_id"] == "m-low"
    assert broker.queue_length(queue) == 0
    assert raw.hlen(f"{redis_prefix}unacked") == 0, "kombu acked both"


def test_celeriac_reads_what_kombu_published_and_holds_it_as_kombu_does(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(), new_queue()
    kombu(redis_url, redis_prefix, "put", queue, base64.b64encode(b"from kombu").decode())
    kombu(redis_url, redis_prefix, "put", queue, base64.b64encode(b"urgent").decode(), "0")
    [item] = raw.lrange(f"{redis_prefix}{queue}", -1, -1)  # the oldest: served first
    tag = json.loads(item)["properties"]["delivery_tag"]
    started = time.time()
    first, second = fetch(broker, queue, 2)
    # Kombu files priority 0 and no priority alike under step 0: FIFO there.
    assert (first.payload, second.payload) == (b"from kombu", b"urgent")
    assert (first.message_id, first.priority, first.delivery_count) == (tag, 9, 1)
    # Held as kombu's QoS holds a message: unacked[tag] = [envelope, exchange, routing key]
    # (kombu's SimpleQueue publishes on an exchange named after the queue) and the
    # unacked_index score is the unix time it was handed out.
    held = json.loads(raw.hget(f"{redis_prefix}unacked", tag) or b"")
    assert held == [json.loads(item), queue, queue]
    score = raw.zscore(f"{redis_prefix}unacked_index", tag)
    assert score is not None and started - 1 <= score <= time.time() + 1
    # Extending moves the score on; acking removes both entries.
    time.sleep(0.01)
    assert settle(broker, lambda: broker.extend([first])) == []
    moved = raw.zscore(f"{redis_prefix}unacked_index", tag)
    assert moved is not None and moved > score
    assert settle(broker, lambda: broker.ack(first)) is True
    assert settle(broker, lambda: broker.ack(second)) is True
    assert raw.hlen(f"{redis_prefix}unacked") == 0
    assert raw.zcard(f"{redis_prefix}unacked_index") == 0


def test_kombu_restores_what_a_celeriac_worker_fetched_and_never_acked(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(), new_queue()
    broker.publish(OutboundMessage(queue, b"abandoned", "m-1", priority=5))
    [lost] = fetch(broker, queue)  # a worker that dies now: the message is in unacked
    assert broker.queue_length(queue) == 0 and raw.hlen(f"{redis_prefix}unacked") == 1

    kombu(redis_url, redis_prefix, "restore", "0.001")  # a Celery worker's restore_visible
    [item] = raw.lrange(f"{redis_prefix}{queue}{SEP}3", 0, -1)  # priority 5 = kombu's 4
    restored = json.loads(item)
    assert restored["headers"]["redelivered"] is True
    assert restored["properties"]["delivery_info"]["redelivered"] is True
    assert raw.hlen(f"{redis_prefix}unacked") == 0

    [again] = fetch(broker, queue)
    assert (again.payload, again.message_id, again.priority) == (b"abandoned", "m-1", 5)
    assert again.delivery_count == 2
    assert settle(broker, lambda: lost.ack()) is False, "a late ack of the restored one"
    assert settle(broker, lambda: again.ack()) is True


def test_celeriac_restores_what_a_killed_kombu_consumer_held(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(visibility=0.5), new_queue()
    kombu(redis_url, redis_prefix, "put", queue, base64.b64encode(b"in flight").decode())
    seen = kombu(redis_url, redis_prefix, "take-and-die", queue)
    tag = seen["delivery_tag"]
    assert raw.hexists(f"{redis_prefix}unacked", tag)
    assert seen["delivery_info"]["exchange"] == queue, "routed back through its binding"
    assert broker.queue_length(queue) == 0
    # Past the visibility timeout, a celeriac fetch restores it as kombu would, and takes it.
    [back] = fetch(broker, queue)
    assert (back.payload, back.message_id) == (b"in flight", tag)
    assert back.delivery_count == 1, "celeriac had not handed it out before"
    held = json.loads(raw.hget(f"{redis_prefix}unacked", tag) or b"")
    assert held[0]["headers"]["redelivered"] is True and held[1:] == [queue, queue]
    assert settle(broker, lambda: back.ack()) is True
    assert raw.hlen(f"{redis_prefix}unacked") == 0


class PartsAsJson(WireFormat):
    """A wire format whose payload is its parts as JSON: what the engine splits and
    joins shows in the payload itself."""

    name = "parts-as-json"

    def encode(self, message: Message) -> bytes:
        raise NotImplementedError

    def decode(self, payload: bytes) -> Message:
        raise NotImplementedError

    def split(self, payload: bytes) -> WireParts:
        given = json.loads(payload)
        return WireParts(given["body"].encode(), given["headers"], given["properties"])

    def join(self, parts: WireParts) -> bytes:
        return json.dumps(
            {"body": parts.body.decode(), "headers": parts.headers, "properties": parts.properties}
        ).encode()


def test_the_wire_formats_parts_are_where_kombu_keeps_them_both_ways(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(wire_format=PartsAsJson()), new_queue()
    sent = {
        "body": '{"n": 1}',
        "headers": {"id": "t-1"},
        "properties": {
            "correlation_id": "t-1",
            "reply_to": "replies",
            "content_type": "application/json",
            "content_encoding": "utf-8",
        },
    }
    broker.publish(OutboundMessage(queue, json.dumps(sent).encode(), "t-1", priority=9))
    seen = kombu(redis_url, redis_prefix, "get", queue)
    assert (seen["payload"], seen["headers"], seen["content_type"]) == (
        {"n": 1},
        {"id": "t-1"},
        "application/json",
    )
    assert seen["delivery_info"]["routing_key"] == queue
    properties = seen["properties"]
    assert (properties["correlation_id"], properties["reply_to"]) == ("t-1", "replies")
    assert (properties["priority"], properties["delivery_mode"]) == (0, 2)  # kombu's 0: first

    kombu(redis_url, redis_prefix, "put-json", queue, json.dumps({"n": 2}))
    [got] = fetch(broker, queue)
    joined = json.loads(got.payload)  # the envelope's parts, as the wire format joins them
    assert (joined["body"], joined["headers"]) == ('{"n": 2}', {"id": "kombu-1"})
    assert joined["properties"]["content_type"] == "application/json"
    assert joined["properties"]["content_encoding"] == "utf-8"
    assert "delivery_tag" not in joined["properties"]  # the transport's, not the message's
    assert got.message_id == "kombu-1"
    assert settle(broker, lambda: got.ack()) is True


def test_a_late_ack_is_refused_once_a_kombu_consumer_holds_the_message(
    make: Any, raw: redis.Redis, redis_url: str, redis_prefix: str
) -> None:
    broker, queue = make(), new_queue()
    broker.publish(OutboundMessage(queue, b"slow", "m-1"))
    [late] = fetch(broker, queue)
    kombu(redis_url, redis_prefix, "restore", "0.001")
    seen = kombu(redis_url, redis_prefix, "take-and-die", queue)  # a Celery worker has it now
    assert seen["headers"]["redelivered"] is True
    held = raw.hget(f"{redis_prefix}unacked", seen["delivery_tag"])
    assert settle(broker, lambda: late.ack()) is False
    assert settle(broker, lambda: broker.extend([late])) == [late]
    assert settle(broker, lambda: late.requeue()) is False
    # The Celery worker's hold is untouched: its crash would still be recovered.
    assert raw.hget(f"{redis_prefix}unacked", seen["delivery_tag"]) == held
    assert broker.queue_length(queue) == 0
