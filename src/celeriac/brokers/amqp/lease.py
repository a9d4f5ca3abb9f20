"""Leases on RabbitMQ (``Broker.hold_lease``/``drop_lease``): an exclusive queue per lease.

RabbitMQ lets one connection at a time declare an exclusive queue and deletes the queue
when that connection closes, so the connection that declared ``<ns>.lease.<name>`` holds
the lease. Each (lease, holder) gets a connection of its own whose heartbeat is a third of
the ttl: a holder that stops (killed, paused) loses the lease when its connection closes,
at once for a dead process, after about two missed heartbeats for a paused one. Renewing
is a round trip on that connection, so a holder that was paused learns that it lost the
lease before it acts again. The fencing token is a durable queue holding the last token,
which only the holder touches. Engine helper: imports aiormq, pamqp and its own modules.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiormq
import aiormq.exceptions
from pamqp.commands import Basic

from celeriac.brokers.amqp.link import DOWN, Channel, Link
from celeriac.brokers.amqp.nodes import Nodes
from celeriac.brokers.amqp.topology import Names

logger = logging.getLogger("celeriac.brokers.amqp")
_FAILED: tuple[type[BaseException], ...] = (*DOWN, aiormq.exceptions.AMQPError, RuntimeError)


def _with_heartbeat(url: str, seconds: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["heartbeat"] = str(seconds)
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class _Holder:
    link: Link
    ttl: float
    channel: Channel | None = None  # the channel that declared the exclusive queue
    token: int | None = None


class Leases:
    """The leases this broker takes part in; every method runs on the broker's I/O loop."""

    def __init__(self, nodes: Nodes, names: Names, connection_name: str) -> None:
        self.nodes = nodes
        self.names = names
        self.connection_name = connection_name
        self._holders: dict[tuple[str, str], _Holder] = {}

    async def hold(self, name: str, holder: str, ttl: float) -> int | None:
        entry = self._holders.get((name, holder))
        if entry is None:
            heartbeat = max(1, int(ttl // 3))
            nodes = self.nodes.with_each(
                lambda target: replace(target, url=_with_heartbeat(target.url, heartbeat))
            )
            link = Link(nodes, f"{self.connection_name} lease {name}")
            entry = self._holders[(name, holder)] = _Holder(link, ttl)
        if entry.token is not None:
            if await self._still_held(entry, name):
                return entry.token
            entry.channel = entry.token = None
            await entry.link.close()  # a fresh connection for the next try
        return await self._take(entry, name)

    async def _still_held(self, entry: _Holder, name: str) -> bool:
        """A round trip on the holding channel: RabbitMQ answers only while the connection
        that owns the exclusive queue lives."""
        channel = entry.channel
        if channel is None or channel.is_closed or not entry.link.alive:
            return False
        try:
            await channel.queue_declare(
                self.names.lease_queue(name), passive=True, timeout=entry.ttl / 3
            )
        except _FAILED:
            return False
        return True

    async def _take(self, entry: _Holder, name: str) -> int | None:
        connection = await entry.link.connection()
        with entry.link.guard():
            channel = await connection.channel(publisher_confirms=True)
        try:
            await channel.queue_declare(
                self.names.lease_queue(name), exclusive=True, timeout=entry.ttl / 3
            )
        except aiormq.exceptions.ChannelLockedResource:
            return None  # another connection holds it; RabbitMQ closed this channel
        with entry.link.guard():
            token = await self._next_token(channel, name, entry.ttl)
        entry.channel, entry.token = channel, token
        return token

    async def _next_token(self, channel: Channel, name: str, ttl: float) -> int:
        """Read the last token (normally one message), publish one more, then ack what was
        read: a holder that dies in between leaves both, and the next one takes the max."""
        queue = self.names.lease_token_queue(name)
        await channel.queue_declare(queue, durable=True, timeout=ttl / 3)
        last, tags = 0, []
        while True:
            message = await channel.basic_get(queue, no_ack=False, timeout=ttl / 3)
            if not isinstance(message.delivery, Basic.GetOk):
                break
            tags.append(int(message.delivery.delivery_tag or 0))
            with contextlib.suppress(ValueError):
                last = max(last, int(message.body.decode()))
        token = last + 1
        properties = Basic.Properties(delivery_mode=2)
        await channel.basic_publish(
            str(token).encode(), routing_key=queue, properties=properties, timeout=ttl / 3
        )
        for tag in tags:
            await channel.basic_ack(tag)
        return token

    async def drop(self, name: str, holder: str) -> bool:
        entry = self._holders.pop((name, holder), None)
        if entry is None:
            return False
        held = entry.token is not None and await self._still_held(entry, name)
        await entry.link.close()  # closing the connection deletes the exclusive queue
        return held

    async def close(self) -> None:
        for entry in self._holders.values():
            await entry.link.close()
        self._holders.clear()
