"""Events and remote control where Celery's tools look for them on Redis.

kombu turns Celery's ``celeryev`` exchange into a fanout over Redis pub/sub, so each
event is one PUBLISH of its kombu envelope on the channel
``<global_keyprefix>/<db>.celeryev/<routing key>`` (the ``fanout_prefix`` and
``fanout_patterns`` kombu uses by default); a monitor's receiver subscribes to
``.../celeryev/*``. Transient, as with Celery: nobody listening, nobody gets it.

Remote control: a command is PUBLISHed on ``<global_keyprefix>/<db>.celery.pidbox`` (the
fanout mailbox, no routing key); a reply is pushed on the caller's reply queue, found as
kombu finds it, by its binding to ``reply.celery.pidbox`` with the caller's routing key.

Engine helper: imports the engine's envelope module and the messages package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celeriac.brokers.kombu_redis.envelope import new_tag
from celeriac.exceptions import DecodeError
from celeriac.messages.celery.kombu_redis import from_kombu_redis, to_kombu_redis
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.wire import WireFormat, WireParts

TRANSIENT = 1


def channel(prefix: str, db: int, exchange: str, routing_key: str = "") -> str:
    """kombu's pub/sub channel of a fanout exchange (and routing key, when one is given)."""
    if not routing_key:
        return f"{prefix}/{db}.{exchange}"
    return f"{prefix}/{db}.{exchange}/{routing_key}"


def publishes(
    wire_format: WireFormat, events: Sequence[Mapping[str, Any]], prefix: str, db: int
) -> list[tuple[str, bytes]]:
    """(pub/sub channel, message) of each event, as kombu's Redis transport publishes it."""
    exchange = wire_format.events_exchange
    assert exchange is not None
    found = []
    for event in events:
        key, parts = wire_format.event_parts(event)
        found.append((channel(prefix, db, exchange, key), transient_envelope(exchange, key, parts)))
    return found


def command_body(data: bytes) -> bytes | None:
    """The body of a remote-control command kombu published on the mailbox's channel (its
    envelope's base64 body); None for anything that is not such an envelope."""
    try:
        return bytes(from_kombu_redis(data).body)
    except DecodeError:
        return None


def transient_envelope(exchange: str, routing_key: str, parts: WireParts) -> bytes:
    """An event, a command or a reply as kombu's Redis transport writes it for
    ``exchange``: not persistent, as kombu's mailbox and Celery's events send them."""
    wire = CeleryWire(
        body=parts.body,
        headers=dict(parts.headers),
        properties={"delivery_mode": TRANSIENT},
        content_type=str(parts.properties.get("content_type", "")),
        content_encoding=str(parts.properties.get("content_encoding", "")),
        delivery_info={"exchange": exchange, "routing_key": routing_key},
    )
    return to_kombu_redis(wire, delivery_tag=new_tag())
