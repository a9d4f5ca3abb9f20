"""``RedisBroker``: the Broker verbs on Redis Streams; each verb is one script or command.

A fetch records the hand-out atomically (XREADGROUP adds the pending entry), so no crash
window loses a message. A lease is the pending entry's idle time: ``extend`` resets it,
and any consumer's fetch takes back entries idle longer than the lease (XAUTOCLAIM),
counting a delivery. Settling checks the holder and its delivery count (fencing); the
settles of one event loop go out in batches (``settles``).
Revocations, idempotency keys and token buckets are one script each on one shared key
(``keys.SharedKeys``); revocations are also announced on the channel (``channel``: pub/sub
for broadcast topics, capped streams for stream topics).
On a Redis Cluster (``redis+cluster://``) the same code runs: every script touches one
slot, and the one read that spans queues (the blocking wait) is split by slot
(``_wait_slots``); ``_redis.RedisTarget`` makes the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
import uuid
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import redis
import redis.asyncio

from celeriac._redis import (
    CLUSTER_SCHEMES,
    check_options,
    parse_target,
    redact,
)
from celeriac._redis_clients import ScriptedClients, broker_down, broker_error
from celeriac.brokers.base import (
    Broker,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    OutboundMessage,
    Subscription,
    Topic,
    check_bucket,
    check_ttl,
)
from celeriac.brokers.redis.channel import open_subscription, stage_publish
from celeriac.brokers.redis.control import local_expiries, revoke_args
from celeriac.brokers.redis.entries import read_dead_letter
from celeriac.brokers.redis.entries import text as _text
from celeriac.brokers.redis.keys import (
    GROUP,
    LEVELS,
    QueueKeys,
    SharedKeys,
    level_of,
    priority_of,
)
from celeriac.brokers.redis.lease import RedisLeases
from celeriac.brokers.redis.packed import PackedCalls
from celeriac.brokers.redis.safety import check_eviction_policy
from celeriac.brokers.redis.scripts import NAMES, execute, execute_async, source
from celeriac.brokers.redis.settles import RedisSettles, SettleBatch
from celeriac.brokers.redis.waits import PRUNE_EVERY, Plan, RedisWaits
from celeriac.exceptions import (
    BrokerConnectionError,
    ImproperlyConfigured,
)
from celeriac.messages.wire import WireFormat

logger = logging.getLogger("celeriac.brokers.redis")
BROKER_OPTIONS = frozenset(
    {"visibility_timeout", "key_prefix", "dead_letter_max_length", "eviction_policy",
     "consumer_prune_idle"}
)  # fmt: skip
PRUNE_IDLE = 3600.0  # default: idle this long and holding nothing = a dead worker's consumer
# A busy consumer's fetches promote due delayed messages and take back expired leases at
# most this often (and a quarter lease); an idle one's always do.
HOUSEKEEPING_EVERY = 0.2
READ_GRACE = 1.0  # seconds close_async waits for blocking reads still out to end


def _key(name: Any) -> bytes:
    return name if isinstance(name, bytes) else str(name).encode()


class RedisBroker(RedisWaits, RedisSettles, RedisLeases, Broker):
    schemes = ("redis", "rediss", "unix", "sentinel", *CLUSTER_SCHEMES)

    def __init__(
        self,
        url: str,
        *,
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        transport_options: Mapping[str, Any] | None = None,
        wire_format: WireFormat | None = None,
    ) -> None:
        super().__init__(
            lease_seconds=lease_seconds, delivery_limit=delivery_limit, wire_format=wire_format
        )
        options = dict(transport_options or {})
        check_options(options, BROKER_OPTIONS, "broker_transport_options")
        self.url = url
        self.prefix = str(options.get("key_prefix", "celeriac"))
        self.dead_letter_max = int(options.get("dead_letter_max_length", 100_000))
        self.eviction_policy = str(options.get("eviction_policy", "warn"))
        if self.eviction_policy not in ("warn", "refuse", "off"):
            raise ImproperlyConfigured(
                f"broker_transport_options['eviction_policy'] must be 'warn', 'refuse' or "
                f"'off', not {self.eviction_policy!r}"
            )
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._rotation = 0
        self._pruned_at = -PRUNE_EVERY  # loop time of the last consumer pruning
        self._housekept: dict[str, float] = {}  # queue -> loop time of its last housekeeping
        self._plans: dict[str, Plan] = {}  # queue -> how it may be waited on (waits.Plan)
        self._packed_calls: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PackedCalls] = (
            weakref.WeakKeyDictionary()
        )
        self.consumer_prune_idle = float(options.get("consumer_prune_idle", PRUNE_IDLE))
        self._target = parse_target(url, options)
        # A blocking read must end before the socket timeout, or it reads as an outage.
        timeout = dict(self._target.options).get("socket_timeout")
        self._block_cap = max(0.05, float(timeout) / 2) if timeout else None
        self._keys: dict[str, QueueKeys] = {}
        # A cluster client connects as soon as it is made, to read the layout.
        self._clients = ScriptedClients(self._target, NAMES, source, self._guard)
        self._settles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SettleBatch] = (
            weakref.WeakKeyDictionary()
        )
        # On a cluster, the blocking reads of each slot still out on a loop (``_wait_slots``).
        self._reads: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[tuple[str, ...], asyncio.Future[Any]]
        ] = weakref.WeakKeyDictionary()

    def keys(self, queue: str) -> QueueKeys:
        keys = self._keys.get(queue)
        if keys is None:  # built once per queue: a fetch and a settle ask every time
            keys = self._keys[queue] = QueueKeys(self.prefix, queue)
        return keys

    @property
    def shared(self) -> SharedKeys:
        return SharedKeys(self.prefix)

    # -- clients and errors -----------------------------------------------------------------
    @property
    def client(self) -> redis.Redis:
        return self._clients.sync

    def _script(self, name: str) -> Any:
        return self._clients.sync_scripts[name]

    def _aclient(self) -> tuple[redis.asyncio.Redis, dict[str, Any]]:
        return self._clients.for_running_loop()

    def _packed(self) -> PackedCalls:
        """The running loop's pre-packed script calls (``packed``), on its client."""
        client = self._aclient()[0]
        loop = asyncio.get_running_loop()
        calls = self._packed_calls.get(loop)
        if calls is None or calls.client is not client:
            calls = self._packed_calls[loop] = PackedCalls(client)
        return calls

    def _down(self, exc: Exception) -> BrokerConnectionError:
        return broker_down(exc, self.url, self._target)

    @contextlib.contextmanager
    def _guard(self) -> Iterator[None]:
        """Driver errors become one clear celeriac error at this boundary."""
        try:
            yield
        except Exception as exc:
            ours = self._error(exc)
            if ours is exc:
                raise
            raise ours from exc

    def _error(self, exc: Exception) -> Exception:
        """The celeriac error for a driver error (``exc`` itself for any other)."""
        return broker_error(exc, self.url, self._target)

    # -- producer ---------------------------------------------------------------------------
    def _stage(self, target: Any, scripts: Mapping[str, Any], message: OutboundMessage) -> Any:
        """Send (or queue on a pipeline) the one command that stores ``message``."""
        keys, level = self.keys(message.queue), level_of(message.priority)
        if message.delay is not None and message.delay > 0:
            return scripts["publish_delayed"](
                keys=[keys.delayed, keys.seq, keys.wake],
                args=[
                    int(message.delay * 1000),
                    message.message_id,
                    level,
                    message.priority,
                    message.payload,
                ],
                client=target,
            )
        own = message.priority == priority_of(level)
        if level > 0:  # the high marker goes with it: fetches read s0 alone without it
            return scripts["publish_high"](
                keys=[keys.stream(level), keys.high],
                args=[message.message_id, message.payload, "" if own else message.priority],
                client=target,
            )
        fields: dict[str, Any] = {"m": message.message_id, "p": message.payload}
        if not own:
            fields["y"] = message.priority
        return target.xadd(keys.stream(level), fields)

    def publish(self, message: OutboundMessage) -> None:
        """One command (one round trip); returns once Redis replied."""
        with self._guard():
            if message.priority or (message.delay is not None and message.delay > 0):
                self._stage(self.client, self._clients.sync_scripts, message)
            else:  # the common call (_stage's last case), on a held connection
                stream = self.keys(message.queue).stream(0)
                self._clients.sync_held.execute(
                    "XADD", stream, "*", "m", message.message_id, "p", message.payload
                )

    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        """All messages in one pipelined round trip; returns once Redis replied."""
        with self._guard():
            client, scripts = self.client, self._clients.sync_scripts
            steps = [functools.partial(self._stage, scripts=scripts, message=m) for m in messages]
            execute(client, steps, scripts.values())

    async def publish_async(self, message: OutboundMessage) -> None:
        client, scripts = self._aclient()
        with self._guard():
            await self._stage(client, scripts, message)

    async def publish_many_async(self, messages: Sequence[OutboundMessage]) -> None:
        client, scripts = self._aclient()
        steps = [functools.partial(self._stage, scripts=scripts, message=m) for m in messages]
        with self._guard():
            await execute_async(client, steps, scripts.values())

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
            # Right after a wait handed out messages, its plan usually still stands: read
            # again at once (what arrived meanwhile comes at once), with no fetch script.
            now = loop.time()
            waits = self._planned(names, now) if limit > 0 and deadline > now else None
            if waits is None:
                deliveries, waits = await self._take(names, limit)
                if deliveries or limit < 1:
                    return deliveries
            remaining = deadline - loop.time()
            if remaining <= 0:
                return []
            deliveries = await self._wait(names, waits, remaining, limit)
            if deliveries or loop.time() >= deadline:  # handed out by the wait, or it ran
                return deliveries  # its course: anything that came, the read handed out

    async def _take(
        self, names: list[str], limit: int
    ) -> tuple[list[Delivery], dict[str, list[Any]]]:
        scripts, calls = self._aclient()[1], self._packed()
        deliveries: list[Delivery] = []
        waits: dict[str, list[Any]] = {}
        now = asyncio.get_running_loop().time()
        every = min(HOUSEKEEPING_EVERY, self.lease_seconds / 4)
        for queue in names:
            if len(deliveries) >= limit:
                break
            keys = self.keys(queue)
            housekeeping = now - self._housekept.get(queue, -every) >= every
            asked = limit - len(deliveries)
            with self._guard():
                found, wait, dead = await calls.evalsha(
                    scripts["fetch"],
                    [*keys.streams, keys.delayed, keys.dead, keys.reap, keys.wake, keys.high],
                    [
                        GROUP,
                        self.consumer,
                        asked,
                        int(self.lease_seconds * 1000),
                        self.delivery_limit,
                        self.dead_letter_max,
                        int(housekeeping),
                    ],
                    cache=True,
                )
            self._plans.pop(queue, None)
            if housekeeping:
                self._housekept[queue] = now
                if wait:  # found empty: how it may be waited on, for the fetches to come
                    self._plans[queue] = Plan.of(wait, now, every)
            elif len(found) < asked:
                # The queue ran dry without it: the next fetch of this queue does it, and
                # so learns how long it may wait (not one more fetch that finds nothing).
                self._housekept[queue] = now - every
            deliveries.extend(self._delivery(queue, keys, row) for row in found)
            waits[queue] = wait
            for entry_id, flat in dead:  # dead-lettered by this fetch: handed back
                fields = {_key(flat[i]): flat[i + 1] for i in range(0, len(flat) - 1, 2)}
                self._hand_back(read_dead_letter(queue, entry_id, fields))
        self._batch().out += len(deliveries)
        return deliveries, waits

    def _delivery(self, queue: str, keys: QueueKeys, row: list[Any]) -> Delivery:
        index, entry_id, message_id, payload, pending, total, priority = row
        stream = keys.streams[int(index) - 1]
        level = LEVELS - int(index)
        return Delivery(
            broker=self,
            queue=queue,
            payload=bytes(payload),
            message_id=_text(message_id),
            delivery_count=int(total),
            priority=int(priority) if int(priority) >= 0 else priority_of(level),
            token=f"{stream}|{_text(entry_id)}|{int(pending)}",
        )

    @staticmethod
    def _parse_token(delivery: Delivery) -> tuple[str, str, str]:
        stream, entry_id, pending = delivery.token.rsplit("|", 2)
        return stream, entry_id, pending

    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        return await self._settle(delivery, "ack" if batch else "ack_now")

    async def requeue(self, delivery: Delivery, *, count_delivery: bool = False) -> bool:
        return await self._settle(delivery, "requeue_counted" if count_delivery else "requeue")

    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str = ""
    ) -> bool:
        return await self._settle(delivery, "dead", DeadLetterReason(reason).value, detail)

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        scripts = self._aclient()[1]
        by_stream: dict[str, list[tuple[Delivery, str, str]]] = {}
        for delivery in deliveries:
            stream, entry_id, pending = self._parse_token(delivery)
            by_stream.setdefault(stream, []).append((delivery, entry_id, pending))
        lost: list[Delivery] = []
        for stream, held in by_stream.items():
            args: list[Any] = [GROUP, self.consumer]
            for _, entry_id, pending in held:
                args += [entry_id, pending]
            with self._guard():
                positions = await scripts["extend"](keys=[stream], args=args)
            lost.extend(held[int(p) - 1][0] for p in positions)  # 1-based pair positions
        return lost

    # -- admin ------------------------------------------------------------------------------
    def check_safety(self) -> str | None:
        """Run at worker start: warn (or refuse) when Redis may evict queue keys."""
        if self.eviction_policy == "off":
            return None
        with self._guard():
            for node, server in self._target.servers(self.client):  # each master of a cluster
                where = f"{redact(self.url)} (node {node})" if node else redact(self.url)
                found = check_eviction_policy(
                    server, where, refuse=self.eviction_policy == "refuse"
                )
                if found:
                    return found
        return None

    def _counts(self, queue: str, purge: bool) -> tuple[int, int]:
        keys = self.keys(queue)
        with self._guard():
            ready, delayed = self._script("counts")(
                keys=[*keys.streams, keys.delayed], args=[GROUP, "1" if purge else "0"]
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
            entries: Any = self.client.xrange(self.keys(queue).dead, "-", "+", count=limit)
        return [read_dead_letter(queue, entry_id, fields) for entry_id, fields in entries]

    def replay_dead_letters(self, queue: str, entry_ids: Sequence[str] | None = None) -> int:
        keys = self.keys(queue)
        with self._guard():
            moved = self._script("replay")(
                keys=[keys.dead, *keys.streams, keys.high], args=list(entry_ids or [])
            )
        return int(moved)

    def purge_dead_letters(self, queue: str) -> int:
        dead = self.keys(queue).dead
        with self._guard(), self.client.pipeline() as pipe:
            pipe.xlen(dead)
            pipe.delete(dead)
            length, _ = pipe.execute()
        return int(length)

    # -- shared state -----------------------------------------------------------------------
    def _revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        """One script: record (bounded, expiring) and announce, atomically."""
        args = revoke_args(self.prefix, ids, ttl, terminate, signal)
        with self._guard():
            self._script("revoke")(keys=[self.shared.revoked], args=args)

    def revoked_ids(self) -> dict[str, float]:
        with self._guard():
            rows = self._script("revoked")(keys=[self.shared.revoked])
        return local_expiries(rows)

    # -- the channel (``channel``) ----------------------------------------------------------
    def _publish_topic(self, topic: Topic, payload: bytes) -> None:
        with self._guard():
            stage_publish(self.client, self.prefix, topic, payload)

    async def _publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        with self._guard():
            await stage_publish(self._aclient()[0], self.prefix, topic, payload)

    async def _subscribe(self, topic: Topic, history: bool) -> Subscription:
        client = self._aclient()[0]
        with self._guard():
            return await open_subscription(
                client,
                lambda: self._target.async_pubsub(client),
                self.prefix,
                topic,
                history,
                self._block_cap,
                self._down,
            )

    def reserve(self, key: str, value: str, ttl: float) -> str | None:
        check_ttl(ttl, "an idempotency key's ttl")
        with self._guard():
            held = self._script("reserve")(
                keys=[self.shared.idempotency(key)], args=[value, max(1, int(ttl * 1000))]
            )
        return None if held is None else _text(held)

    def release(self, key: str, value: str) -> bool:
        with self._guard():
            freed = self._script("release")(keys=[self.shared.idempotency(key)], args=[value])
        return bool(freed)

    async def acquire(self, key: str, rate: float, capacity: float) -> float:
        """One script on Redis server time, so every worker counts on the same clock."""
        check_bucket(rate, capacity)
        scripts = self._aclient()[1]
        with self._guard():
            wait = await scripts["acquire"](
                keys=[self.shared.bucket(key)], args=[repr(float(rate)), repr(float(capacity))]
            )
        return max(0.0, float(_text(wait)))

    def close(self) -> None:
        self._clients.close()

    async def close_async(self) -> None:
        loop = asyncio.get_running_loop()
        batch = self._settles.get(loop)
        if batch is not None and batch.task is not None and not batch.task.done():
            batch.flush.set()  # held acks go out now, before the connection closes
            with contextlib.suppress(Exception):
                await asyncio.shield(batch.task)
        reads = list(self._reads.pop(loop, {}).values())
        for read in reads:
            read.cancel()
        await self._clients.close_running_loop()  # (ends a read still out: it closes)
        if reads:
            await asyncio.wait(reads, timeout=READ_GRACE)
