"""Beat's state in the broker: the latest due time handled per entry, on a stream topic.

Runtime layer (beat): uses only the broker seam's channel (``publish_topic``,
``subscribe(history=True)``), so the state lives in Redis or RabbitMQ and no local file
can be corrupted by a kill. The leader publishes a record after each tick that handled a
due time (the entries it changed), and a full record when it takes over and every
``FULL_EVERY`` records, so the kept history always holds every entry. A scheduler that
takes over reads the history and keeps, per entry, the latest due time any record names:
due times only grow, so records from a stale leader cannot move an entry back.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Mapping
from datetime import datetime

from celeriac.brokers.base import Broker, Topic
from celeriac.exceptions import BrokerError

#: Records kept: Redis keeps about this many; RabbitMQ reads ``keep`` as KiB of stream.
KEEP = 1000
FULL_EVERY = KEEP // 4
STATE = Topic("celeriac.beat.state", kind="stream", keep=KEEP)
READ_TIMEOUT = 10.0  # seconds the history may take to arrive


#: What a leader was about to send when it wrote its latest record: entry -> due times.
Pending = dict[str, list[datetime]]


def encode(
    holder: str,
    token: int,
    last: Mapping[str, datetime],
    *,
    full: bool,
    sending: Mapping[str, list[datetime]] | None = None,
) -> bytes:
    record: dict[str, object] = {
        "holder": holder,
        "token": token,
        "full": full,
        "last": {name: due.isoformat() for name, due in last.items()},
    }
    if sending:
        record["sending"] = {n: [d.isoformat() for d in dues] for n, dues in sending.items()}
    return json.dumps(record, separators=(",", ":")).encode()


def merge(into: dict[str, datetime], payload: bytes) -> Pending | None:
    """Fold one record into ``into``, keeping the latest due time per entry; return the
    runs the record's writer was about to send (None: not a state record, such as a
    marker or another writer's payload, which is passed over)."""
    try:
        record = json.loads(payload)
        last = record["last"]
        items = [(str(name), datetime.fromisoformat(due)) for name, due in last.items()]
        sending = {
            str(name): [datetime.fromisoformat(due) for due in dues]
            for name, dues in record.get("sending", {}).items()
        }
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not a record: a marker (``_read``), or another writer
    for name, due in items:
        if due.tzinfo is not None and (name not in into or due > into[name]):
            into[name] = due
    return sending


async def _read(broker: Broker) -> tuple[dict[str, datetime], Pending]:
    """Read the history up to a marker published after subscribing: the stream is ordered,
    so every record written before the marker has been read once the marker arrives."""
    last: dict[str, datetime] = {}
    pending: Pending = {}
    marker = json.dumps({"marker": uuid.uuid4().hex}).encode()
    try:
        subscription = await broker.subscribe(STATE, history=True)
        try:
            await broker.publish_topic_async(STATE, marker)
            while (payload := await subscription.get(READ_TIMEOUT)) != marker:
                if payload is None:
                    raise BrokerError(
                        f"beat's state ({STATE.name}) could not be read within {READ_TIMEOUT:g} s"
                    )
                sending = merge(last, payload)
                if sending is not None:
                    pending = sending  # the latest record's: what its writer was sending
        finally:
            await subscription.close()
    finally:
        await broker.close_async()  # the async face belongs to this short-lived loop
    return last, pending


def load(broker: Broker) -> tuple[dict[str, datetime], Pending]:
    """The latest due time handled per entry, as the broker keeps it, and the runs the
    writer of the latest record was about to send."""
    return asyncio.run(_read(broker))


def save(
    broker: Broker,
    holder: str,
    token: int,
    last: Mapping[str, datetime],
    *,
    full: bool,
    sending: Mapping[str, list[datetime]] | None = None,
) -> None:
    broker.publish_topic(STATE, encode(holder, token, last, full=full, sending=sending))
