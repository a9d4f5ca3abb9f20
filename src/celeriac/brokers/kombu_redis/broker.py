"""``KombuRedisBroker``: the Broker verbs on kombu's Redis lists, so that celeriac and Celery
workers and producers can share queues (``keys`` has the layout).

Publishing LPUSHes the envelope (``envelope``: the wire format's parts where kombu puts them)
on the list of its priority step, as kombu's producers do.
A fetch is one script per queue that pops from the right and records the hand-out in
kombu's ``unacked`` hash and ``unacked_index`` in the same step, so a worker that dies
loses nothing: any kombu consumer's ``restore_visible``, or a celeriac fetch
(``restore``), puts it back once the visibility timeout (the lease) has passed. ``extend``
moves the index score to now. Settling checks that the hand-out is still the live one
(fencing). A waiting fetch blocks on a wake list that celeriac's publishes push to; it
looks again at least every ``polling_interval`` seconds for what Celery's producers push.
Delays, delivery counts and dead letters live in keys of celeriac's own. Shared state
(revocations, idempotency keys, token buckets, leases, topics) is forwarded to the broker
given as ``shared`` (``shared``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio

from celeriac._redis import check_options, parse_target
from celeriac._redis_clients import ScriptedClients, broker_down, broker_error
from celeriac._redis_pubsub import PubSubSubscription
from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    OutboundMessage,
    Subscription,
    Topic,
)
from celeriac.brokers.kombu_redis import envelope, wire_events
from celeriac.brokers.kombu_redis.dead import read_dead_letter
from celeriac.brokers.kombu_redis.keys import Layout, kombu_priority, steps_option
from celeriac.brokers.kombu_redis.restore import Buried, Restorer
from celeriac.brokers.kombu_redis.scripts import NAMES, source
from celeriac.brokers.kombu_redis.shared import SharedState
from celeriac.exceptions import (
    ImproperlyConfigured,
)
from celeriac.messages.wire import WireFormat, WireParts

logger = logging.getLogger("celeriac.brokers.kombu_redis")
SCHEME_PREFIX = "kombu+"
BROKER_OPTIONS = frozenset(
    {"global_keyprefix", "visibility_timeout", "sep", "priority_steps", "unacked_key",
     "unacked_index_key", "unacked_mutex_key", "unacked_mutex_expire", "polling_interval",
     "dead_letter_max_length", "eviction_policy", "delivery_counts_kept"}
)  # fmt: skip
POLLING_INTERVAL = 1.0  # seconds: how late an idle fetch may see what a Celery producer pushed
HOUSEKEEPING_EVERY = 0.2  # seconds between restores of expired hand-outs (and a quarter lease)
PRUNE_EVERY = 60.0  # seconds between prunings of old delivery counts
COUNTS_KEPT = 7 * 86400.0  # seconds a delivery count is kept after the last hand-out


def redis_url(url: str) -> str:
    """The Redis URL of a ``kombu+redis://`` (``+rediss``, ``+unix``, ``+sentinel``) URL."""
    scheme, sep, rest = url.partition("://")
    if scheme.lower().startswith(SCHEME_PREFIX):
        return f"{scheme[len(SCHEME_PREFIX) :]}{sep}{rest}"
    return url


class KombuRedisBroker(SharedState, Broker):
    carries_wire_events = True
    schemes = ("kombu+redis", "kombu+rediss", "kombu+unix", "kombu+sentinel")

    def __init__(
        self,
        url: str,
        *,
        shared: Broker,
        lease_seconds: float = 3600.0,
        delivery_limit: int = 5,
        transport_options: Mapping[str, Any] | None = None,
        wire_format: WireFormat | None = None,
    ) -> None:
        super().__init__(
            lease_seconds=lease_seconds, delivery_limit=delivery_limit, wire_format=wire_format
        )
        options = dict(transport_options or {})
        check_options(options, BROKER_OPTIONS, "broker_transport_options")
        self.url = redis_url(url)
        self.shared = shared
        try:
            self.layout = Layout(
                prefix=str(options.get("global_keyprefix", "")),
                sep=str(options.get("sep", Layout.sep)),
                steps=steps_option(options.get("priority_steps", Layout.steps)),
                unacked_name=str(options.get("unacked_key", Layout.unacked_name)),
                unacked_index_name=str(options.get("unacked_index_key", Layout.unacked_index_name)),
                unacked_mutex_name=str(options.get("unacked_mutex_key", Layout.unacked_mutex_name)),
            )
        except ValueError as exc:
            raise ImproperlyConfigured(f"broker_transport_options: {exc}") from None
        self.polling_interval = float(options.get("polling_interval", POLLING_INTERVAL))
        if not self.polling_interval > 0:
            raise ImproperlyConfigured(
                f"broker_transport_options['polling_interval'] must be a positive number "
                f"of seconds, not {self.polling_interval!r}"
            )
        self.dead_letter_max = int(options.get("dead_letter_max_length", 100_000))
        self.counts_kept = float(options.get("delivery_counts_kept", COUNTS_KEPT))
        self.restorer = Restorer(
            self.layout,
            visibility=lease_seconds,
            delivery_limit=delivery_limit,
            dead_max=self.dead_letter_max,
            mutex_expire=float(options.get("unacked_mutex_expire", 300)),
        )
        self._target = parse_target(self.url, options)
        # A blocking wait must end before the socket timeout, or it reads as an outage.
        timeout = dict(self._target.options).get("socket_timeout")
        self._block_cap = max(0.05, float(timeout) / 2) if timeout else None
        self._rotation = 0
        self._restored_at = -HOUSEKEEPING_EVERY  # loop time of the last restore
        self._pruned_at = -PRUNE_EVERY
        self._clients = ScriptedClients(self._target, NAMES, source)

    # -- clients and errors -----------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        return self._clients.sync

    def _script(self, name: str) -> Any:
        return self._clients.sync_scripts[name]

    def _aclient(self) -> tuple[redis.asyncio.Redis, dict[str, Any]]:
        return self._clients.for_running_loop()

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Driver errors become one clear celeriac error at this boundary."""
        try:
            yield
        except Exception as exc:
            ours = broker_error(exc, self.url, self._target)
            if ours is exc:
                raise
            raise ours from exc

    # -- producer ---------------------------------------------------------------------------
    def _stage(self, target: Any, scripts: Mapping[str, Any], message: OutboundMessage) -> Any:
        """Send (or queue on a pipeline) the one script call that stores ``message``."""
        layout, queue = self.layout, message.queue
        item = envelope.prepare(
            message.payload,
            message.message_id,
            queue,
            message.priority,
            message.persistent,
            self.wire_format,
        )
        index = layout.step_index(kombu_priority(message.priority))
        if message.delay is not None and message.delay > 0:
            return scripts["publish_delayed"](
                keys=[layout.delayed(queue), layout.wake(queue)],
                args=[int(message.delay * 1000), b"%d%s" % (index, item)],
                client=target,
            )
        return scripts["publish"](
            keys=[layout.list_key(queue, index), layout.wake(queue)], args=[item], client=target
        )

    def publish(self, message: OutboundMessage) -> None:
        client = self.client
        with self._guard():
            self._stage(client, self._clients.sync_scripts, message)

    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        """All messages in one pipelined round trip; returns once Redis replied."""
        client = self.client
        with self._guard(), client.pipeline(transaction=False) as pipe:
            for message in messages:
                self._stage(pipe, self._clients.sync_scripts, message)
            pipe.execute()

    async def publish_async(self, message: OutboundMessage) -> None:
        client, scripts = self._aclient()
        with self._guard():
            await self._stage(client, scripts, message)

    async def publish_many_async(self, messages: Sequence[OutboundMessage]) -> None:
        client, scripts = self._aclient()
        with self._guard():
            async with client.pipeline(transaction=False) as pipe:
                for message in messages:
                    await self._stage(pipe, scripts, message)
                await pipe.execute()

    # -- events for Celery's monitors (``celeryev``) ---------------------------------------
    def _wire_events(self, events: Sequence[Mapping[str, Any]]) -> list[tuple[str, bytes]]:
        return wire_events.publishes(self.wire_format, events, self.layout.prefix, self._db)

    @property
    def _db(self) -> int:
        """The database the client talks to (the URL's path, or a Sentinel's db option):
        part of kombu's pub/sub channel names."""
        return int(self.client.connection_pool.connection_kwargs.get("db", 0) or 0)

    def publish_wire_events(self, events: Sequence[Mapping[str, Any]]) -> None:
        client = self.client
        with self._guard(), client.pipeline(transaction=False) as pipe:
            for name, message in self._wire_events(events):
                pipe.publish(name, message)
            pipe.execute()

    async def publish_wire_events_async(self, events: Sequence[Mapping[str, Any]]) -> None:
        client = self._aclient()[0]
        with self._guard():
            async with client.pipeline(transaction=False) as pipe:
                for name, message in self._wire_events(events):
                    pipe.publish(name, message)
                await pipe.execute()

    async def subscribe_wire_control(self, hostname: str) -> Subscription:
        exchange = self.wire_format.control_exchange
        assert exchange is not None
        client = self._aclient()[0]
        name = wire_events.channel(self.layout.prefix, self._db, exchange)
        subscription = PubSubSubscription(
            Topic(exchange), lambda: self._target.async_pubsub(client), name,
            lambda exc: broker_down(exc, self.url, self._target),
            unwrap=wire_events.command_body,
        )  # fmt: skip
        with self._guard():
            await subscription.start()
        return subscription

    def publish_wire_command(self, method: str, arguments: Mapping[str, Any]) -> None:
        exchange = self.wire_format.control_exchange
        assert exchange is not None
        parts = self.wire_format.control_command_parts(method, arguments)
        message = wire_events.transient_envelope(exchange, "", parts)
        with self._guard():
            self.client.publish(
                wire_events.channel(self.layout.prefix, self._db, exchange), message
            )

    async def publish_wire_reply(self, exchange: str, routing_key: str, reply: WireParts) -> None:
        client = self._aclient()[0]
        layout = self.layout
        with self._guard():
            members = await client.smembers(layout.binding(exchange))
            bound = map(layout.parse_binding, members)
            queues = {queue for key, _, queue in bound if key == routing_key}
            if queues:
                message = wire_events.transient_envelope(exchange, routing_key, reply)
                async with client.pipeline(transaction=False) as pipe:
                    for queue in sorted(queues):
                        pipe.lpush(layout.list_key(queue, 0), message)
                    await pipe.execute()

    # -- consumer ---------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, timeout)
        # Start at a different queue on each call, so that no queue starves another.
        start = self._rotation % max(1, len(queues))
        self._rotation += 1
        names = [*queues[start:], *queues[:start]]
        # A lost connection raises at once: the worker's consumer says Redis is down (even
        # for a blip shorter than this wait) and spaces its own attempts.
        while True:
            deliveries, wait = await self._take(names, limit)
            remaining = deadline - loop.time()
            if deliveries or limit < 1 or remaining <= 0:
                return deliveries
            await self._wait(names, min(remaining, wait))

    async def _take(self, names: list[str], limit: int) -> tuple[list[Delivery], float]:
        """Hand out up to ``limit`` messages; with none, how long to wait at most."""
        client, scripts = self._aclient()
        layout = self.layout
        deliveries: list[Delivery] = []
        wait = self.polling_interval
        oldest: float | None = None
        for queue in names:
            if len(deliveries) >= limit:
                break
            with self._guard():
                rows, due, first, now_ms, buried = await scripts["fetch"](
                    keys=[
                        *layout.held,
                        layout.serial,
                        layout.delayed(queue),
                        layout.dead(queue),
                        layout.wake(queue),
                        *layout.lists(queue),
                    ],
                    args=[
                        limit - len(deliveries),
                        self.delivery_limit,
                        self.dead_letter_max,
                        queue,
                    ],
                )
            deliveries.extend(self._delivery(queue, row) for row in rows)
            await self._hand_back_buried(client, [Buried(queue, _text(i)) for i in buried])
            if int(due) >= 0:
                wait = min(wait, int(due) / 1000)
            if first:
                oldest = float(first) - int(now_ms) / 1000  # relative to the server's now
        if oldest is not None:
            wait = min(wait, await self._housekeeping(client, scripts, oldest))
        return deliveries, max(0.0, wait)

    async def _housekeeping(self, client: Any, scripts: dict[str, Any], oldest: float) -> float:
        """Restore expired hand-outs when the oldest is due (at most every
        ``HOUSEKEEPING_EVERY``); how long until the next one may be. ``oldest``: the
        oldest ``unacked_index`` score, in seconds from now (negative: in the past)."""
        loop_now = asyncio.get_running_loop().time()
        every = min(HOUSEKEEPING_EVERY, self.lease_seconds / 4)
        left = oldest + self.lease_seconds
        if left > 0:
            return left
        since = loop_now - self._restored_at
        if since < every:
            return every - since
        self._restored_at = loop_now
        with self._guard():
            _, buried = await self.restorer.run(client, scripts)
            await self._hand_back_buried(client, buried)
            if loop_now - self._pruned_at >= PRUNE_EVERY:
                self._pruned_at = loop_now
                await scripts["prune"](
                    keys=[
                        self.layout.unacked,
                        self.layout.deliveries,
                        self.layout.delivered_at,
                        self.layout.leases,
                    ],
                    args=[int(self.counts_kept * 1000), 1000],
                )
        return 0.0

    async def _hand_back_buried(self, client: Any, buried: list[Buried]) -> None:
        """What a script dead-lettered on its own goes to ``take_dead_lettered``."""
        for one in buried:
            key = self.layout.dead(one.queue)
            for entry_id, fields in await client.xrange(key, one.entry_id, one.entry_id):
                self._hand_back(
                    read_dead_letter(
                        one.queue, entry_id, fields, self.layout.steps, self.wire_format
                    )
                )

    def _delivery(self, queue: str, row: list[Any]) -> Delivery:
        index, item, tag, count, serial = row
        stored = envelope.read(bytes(item), self.wire_format)
        priority = stored.priority
        if priority is None:  # kombu files it under step 0, as priority 0
            priority = 9 - self.layout.steps[int(index)]
        return Delivery(
            broker=self,
            queue=queue,
            payload=stored.payload,
            message_id=stored.message_id,
            delivery_count=int(count),
            priority=priority,
            token=f"{_text(tag)}|{int(serial)}",
        )

    async def _wait(self, names: list[str], block: float) -> None:
        """Block until a celeriac publish wakes a queue, or ``block`` seconds pass."""
        if self._block_cap is not None:
            block = min(block, self._block_cap)
        if block <= 0:
            return
        client = self._aclient()[0]
        with self._guard():
            await client.brpop([self.layout.wake(q) for q in names], timeout=max(0.01, block))

    async def _settle(
        self, delivery: Delivery, action: str, why: str = "", detail: str = ""
    ) -> bool:
        tag, serial = delivery.token.rsplit("|", 1)
        layout, queue = self.layout, delivery.queue
        scripts = self._aclient()[1]
        with self._guard():
            done = await scripts["settle"](
                keys=[*layout.held, layout.dead(queue), layout.wake(queue), *layout.lists(queue)],
                args=[tag, serial, action, why, detail, self.dead_letter_max],
            )
        return bool(int(done))

    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        return await self._settle(delivery, "ack")

    async def requeue(self, delivery: Delivery, *, count_delivery: bool = False) -> bool:
        return await self._settle(delivery, "requeue_counted" if count_delivery else "requeue")

    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str = ""
    ) -> bool:
        return await self._settle(delivery, "dead", DeadLetterReason(reason).value, detail)

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        if not deliveries:
            return []
        args: list[str] = []
        for delivery in deliveries:
            args += delivery.token.rsplit("|", 1)
        scripts = self._aclient()[1]
        with self._guard():
            lost = await scripts["extend"](
                keys=[self.layout.unacked_index, self.layout.leases], args=args
            )
        return [deliveries[int(position) - 1] for position in lost]

    # -- admin ------------------------------------------------------------------------------
    def _counts(self, queue: str, purge: bool) -> tuple[int, int]:
        with self._guard():
            ready, delayed = self._script("counts")(
                keys=[self.layout.delayed(queue), *self.layout.lists(queue)],
                args=["1" if purge else "0"],
            )
        return int(ready), int(delayed)

    def queue_length(self, queue: str) -> int:
        return self._counts(queue, purge=False)[0]

    def delayed_count(self, queue: str) -> int:
        return self._counts(queue, purge=False)[1]

    def purge(self, queue: str) -> int:
        return sum(self._counts(queue, purge=True))

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        with self._guard():
            entries: Any = self.client.xrange(self.layout.dead(queue), "-", "+", count=limit)
        return [
            read_dead_letter(queue, entry_id, fields, self.layout.steps, self.wire_format)
            for entry_id, fields in entries
        ]

    def replay_dead_letters(self, queue: str, entry_ids: Sequence[str] | None = None) -> int:
        layout = self.layout
        with self._guard():
            moved = self._script("replay")(
                keys=[
                    layout.dead(queue),
                    layout.deliveries,
                    layout.delivered_at,
                    layout.wake(queue),
                    *layout.lists(queue),
                ],
                args=list(entry_ids or []),
            )
        return int(moved)

    def purge_dead_letters(self, queue: str) -> int:
        dead = self.layout.dead(queue)
        with self._guard(), self.client.pipeline() as pipe:
            pipe.xlen(dead)
            pipe.delete(dead)
            length, _ = pipe.execute()
        return int(length)

    def close(self) -> None:
        self._clients.close()
        self.shared.close()

    async def close_async(self) -> None:
        await self._clients.close_running_loop()
        await self.shared.close_async()


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
