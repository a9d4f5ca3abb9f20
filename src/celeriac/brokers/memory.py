"""The in-process ``memory`` engine: the reference whose behaviour every other engine matches.

Owns the ready heaps, delayed heaps, leases and dead letters of one process behind one
``threading.Lock``, so a sync producer and async consumers on several event loops (in
several threads) can share one instance; so are the revocations, idempotency keys,
token buckets and channel topics (in-process fan-out), which only this process sees.
Imports ``celeriac.brokers.base``, ``celeriac.messages`` and the stdlib; it must never
import another engine or the app.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import itertools
import math
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from celeriac.brokers.base import (
    REVOCATIONS,
    Broker,
    ChannelKind,
    DeadLetter,
    DeadLetterReason,
    Delivery,
    OutboundMessage,
    Subscription,
    Topic,
    check_bucket,
    check_ttl,
    take_token,
)
from celeriac.messages import revocation
from celeriac.messages.wire import WireFormat

SWEEP_EVERY = 60.0  # seconds between sweeps of expired revocations, keys and full buckets


@dataclass(eq=False)
class _Stored:
    """A message as the broker holds it; ``seq`` fixes its place within its priority."""

    queue: str
    payload: bytes
    message_id: str
    priority: int
    seq: int
    delivery_count: int = 0  # deliveries so far; the next hand-out shows this + 1


@dataclass(eq=False)
class _Lease:
    message: _Stored
    deadline: float  # clock() time; at or after it the lease is lost


@dataclass(eq=False)
class _Queue:
    # Heaps: ready is ordered by (-priority, seq), so higher priority first, FIFO within one.
    ready: list[tuple[int, int, _Stored]] = field(default_factory=list)
    delayed: list[tuple[float, int, _Stored]] = field(default_factory=list)  # by (eta, seq)
    # (deadline, token) of leases on this queue. Entries go stale when a lease is
    # extended or ended; they are dropped lazily when they reach the top.
    expiries: list[tuple[float, str]] = field(default_factory=list)
    # entry_id -> (letter, priority); dict order is insertion order, i.e. oldest first.
    # The priority is kept so a replayed message is served as it was published.
    dead: dict[str, tuple[DeadLetter, int]] = field(default_factory=dict)


@dataclass(eq=False)
class _Waiter:
    """A ``fetch`` asleep on its own event loop until a message may be ready for it."""

    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    queues: frozenset[str]
    wake_at: float  # clock() time it wakes by itself; -inf once someone woke it


class _Subscription(Subscription):
    """A subscriber: the broker hands it each payload under its lock, so in publish order."""

    def __init__(self, broker: MemoryBroker, topic: Topic) -> None:
        super().__init__(topic)
        self._broker = broker

    async def _stop(self) -> None:
        self._broker._unsubscribe(self)


@dataclass(eq=False)
class _Topic:
    subscribers: list[_Subscription] = field(default_factory=list)
    history: collections.deque[bytes] = field(default_factory=collections.deque)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class MemoryBroker(Broker):
    """All state in this process; safe to share between threads and event loops.

    ``requeue`` and an expired lease put the message back at its original place in its
    priority (it keeps its publish sequence), so it is served before messages published
    after it, "as if this delivery had not happened". A replayed dead letter goes to the
    back of its priority. A lease is lost at its deadline, observed by any call that
    touches the queue, even if no other consumer has taken the message yet.
    """

    schemes = ("memory",)
    shares_across_processes = False  # one process: prefork children cannot reach it

    def __init__(
        self,
        *,
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        clock: Callable[[], float] = time.time,
        wire_format: WireFormat | None = None,
    ) -> None:
        super().__init__(
            lease_seconds=lease_seconds, delivery_limit=delivery_limit, wire_format=wire_format
        )
        self._clock = clock
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        self._leases: dict[str, _Lease] = {}  # token -> lease, for every in-flight message
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._rotation = 0  # which requested queue a fetch looks at first, among equals
        self._revoked: dict[str, float] = {}  # task id -> clock() time it is forgotten
        self._topics: dict[str, _Topic] = {}
        self._reserved: dict[str, tuple[str, float]] = {}  # key -> (value, clock() expiry)
        self._named_leases: dict[str, tuple[str, int, float]] = {}  # name -> holder, token, end
        self._lease_tokens: dict[str, int] = {}  # name -> the last token handed out
        self._buckets: dict[str, tuple[float, float, float]] = {}  # key -> (tokens, at, full)
        self._swept_at = -math.inf

    # -- producer ---------------------------------------------------------------------------
    def publish(self, message: OutboundMessage) -> None:
        self.publish_many([message])

    def publish_many(self, messages: Sequence[OutboundMessage]) -> None:
        # OutboundMessage checked each priority when it was made, so the batch is valid.
        with self._lock:
            now = self._clock()
            for message in messages:
                self._store(message, now)

    async def publish_async(self, message: OutboundMessage) -> None:
        self.publish(message)  # no I/O: the lock is only ever held briefly

    async def publish_many_async(self, messages: Sequence[OutboundMessage]) -> None:
        self.publish_many(messages)

    # -- consumer ---------------------------------------------------------------------------
    async def fetch(self, queues: Sequence[str], limit: int, timeout: float) -> list[Delivery]:
        names = list(dict.fromkeys(queues))  # de-duplicated, order kept
        if limit < 1 or not names:
            return []
        loop = asyncio.get_running_loop()
        give_up = time.monotonic() + max(timeout, 0.0)
        while True:
            with self._lock:
                now = self._clock()
                for name in names:
                    self._refresh(name, now)
                taken = self._take(names, limit, now)
                remaining = give_up - time.monotonic()
                if taken or remaining <= 0:
                    return taken
                # Wake by ourselves when the caller's timeout ends, or when a delayed
                # message falls due or a lease expires on one of our queues; publish,
                # requeue and replay wake us sooner (see _wake).
                wake_at = min(now + remaining, self._next_due(names))
                waiter = _Waiter(loop, loop.create_future(), frozenset(names), wake_at)
                self._waiters.append(waiter)
            try:
                await self._sleep(waiter, max(wake_at - now, 0.0))
            finally:
                with self._lock:
                    self._waiters.remove(waiter)

    async def ack(self, delivery: Delivery, *, batch: bool = False) -> bool:
        # In memory an ack costs no round trip: it is applied at once, batched or not.
        with self._lock:
            return self._end_lease(delivery, self._clock()) is not None

    async def requeue(self, delivery: Delivery, *, count_delivery: bool = False) -> bool:
        with self._lock:
            message = self._end_lease(delivery, self._clock())
            if message is None:
                return False
            if not count_delivery:
                message.delivery_count -= 1  # as if this delivery had not happened
            self._make_ready(message)
            return True

    async def dead_letter(
        self, delivery: Delivery, reason: DeadLetterReason, detail: str = ""
    ) -> bool:
        reason = DeadLetterReason(reason)
        with self._lock:
            now = self._clock()
            message = self._end_lease(delivery, now)
            if message is None:
                return False
            self._bury(message, reason, detail, now)
            return True

    async def extend(self, deliveries: Sequence[Delivery]) -> list[Delivery]:
        lost: list[Delivery] = []
        with self._lock:
            now = self._clock()
            for delivery in deliveries:
                lease = self._live_lease(delivery, now)  # past its deadline: lost, not renewed
                if lease is None:
                    lost.append(delivery)
                    continue
                lease.deadline = now + self.lease_seconds
                expiries = self._queue(lease.message.queue).expiries
                heapq.heappush(expiries, (lease.deadline, delivery.token))
        return lost

    # -- admin ------------------------------------------------------------------------------
    def queue_length(self, queue: str) -> int:
        with self._lock:
            return len(self._refreshed(queue).ready)

    def delayed_count(self, queue: str) -> int:
        with self._lock:
            return len(self._refreshed(queue).delayed)

    def purge(self, queue: str) -> int:
        with self._lock:
            state = self._refreshed(queue)
            dropped = len(state.ready) + len(state.delayed)
            state.ready.clear()
            state.delayed.clear()
            return dropped

    def dead_letters(self, queue: str, limit: int = 100) -> list[DeadLetter]:
        with self._lock:
            state = self._refreshed(queue)
            return [letter for letter, _ in itertools.islice(state.dead.values(), max(limit, 0))]

    def replay_dead_letters(self, queue: str, entry_ids: Sequence[str] | None = None) -> int:
        with self._lock:
            state = self._refreshed(queue)
            chosen = list(state.dead) if entry_ids is None else entry_ids
            replayed = 0
            for entry_id in chosen:
                entry = state.dead.pop(entry_id, None)
                if entry is None:
                    continue  # unknown or already replayed: nothing to do
                letter, priority = entry
                seq = next(self._seq)
                self._make_ready(_Stored(queue, letter.payload, letter.message_id, priority, seq))
                replayed += 1
            return replayed

    def purge_dead_letters(self, queue: str) -> int:
        with self._lock:
            state = self._refreshed(queue)
            dropped = len(state.dead)
            state.dead.clear()
            return dropped

    # -- shared state -----------------------------------------------------------------------
    def _revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        with self._lock:
            now = self._clock()
            self._sweep(now)
            for task_id in ids:
                self._revoked[task_id] = max(self._revoked.get(task_id, now), now + ttl)
            self._fan_out(REVOCATIONS, revocation.encode(ids, ttl, terminate, signal))

    def revoked_ids(self) -> dict[str, float]:
        with self._lock:
            now, local = self._clock(), time.time()
            return {i: local + (at - now) for i, at in self._revoked.items() if at > now}

    # -- the channel: in-process fan-out ----------------------------------------------------
    def _publish_topic(self, topic: Topic, payload: bytes) -> None:
        with self._lock:
            self._fan_out(topic, payload)

    async def _publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        self._publish_topic(topic, payload)

    async def _subscribe(self, topic: Topic, history: bool) -> Subscription:
        subscription = _Subscription(self, topic)
        with self._lock:
            state = self._topics.setdefault(topic.name, _Topic())
            for payload in state.history if history else ():
                subscription.deliver(payload)
            state.subscribers.append(subscription)
        return subscription

    def _fan_out(self, topic: Topic, payload: bytes) -> None:
        """With the lock held, so every subscriber sees every publisher's payloads in one order."""
        state = self._topics.get(topic.name)
        if state is None and topic.kind is ChannelKind.BROADCAST:
            return  # nobody listens, nothing is kept
        if state is None:
            state = self._topics[topic.name] = _Topic()
        if topic.kind is ChannelKind.STREAM:
            state.history.append(payload)
            while len(state.history) > topic.keep:
                state.history.popleft()
        for subscriber in state.subscribers:
            subscriber.deliver(payload)

    def _unsubscribe(self, subscription: _Subscription) -> None:
        with self._lock:
            state = self._topics.get(subscription.topic.name)
            if state is not None and subscription in state.subscribers:
                state.subscribers.remove(subscription)
                if not state.subscribers and not state.history:
                    del self._topics[subscription.topic.name]

    def reserve(self, key: str, value: str, ttl: float) -> str | None:
        check_ttl(ttl, "an idempotency key's ttl")
        with self._lock:
            now = self._clock()
            self._sweep(now)
            held = self._reserved.get(key)
            if held is not None and held[1] > now:
                return held[0]
            self._reserved[key] = (value, now + ttl)
            return None

    def _hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        with self._lock:
            now = self._clock()
            held = self._named_leases.get(name)
            if held is not None and held[0] != holder and held[2] > now:
                return None
            if held is not None and held[0] == holder and held[2] > now:
                token = held[1]
            else:
                token = self._lease_tokens.get(name, 0) + 1
                self._lease_tokens[name] = token
            self._named_leases[name] = (holder, token, now + ttl)
            return token

    def drop_lease(self, name: str, holder: str) -> bool:
        with self._lock:
            held = self._named_leases.get(name)
            if held is None or held[0] != holder or held[2] <= self._clock():
                return False
            del self._named_leases[name]
            return True

    def release(self, key: str, value: str) -> bool:
        with self._lock:
            held = self._reserved.get(key)
            if held is None or held[0] != value or held[1] <= self._clock():
                return False
            del self._reserved[key]
            return True

    async def acquire(self, key: str, rate: float, capacity: float) -> float:
        check_bucket(rate, capacity)
        with self._lock:
            now = self._clock()
            self._sweep(now)
            tokens, at, _ = self._buckets.get(key, (capacity, now, now))
            tokens, wait = take_token(tokens, now - at, rate, capacity)
            self._buckets[key] = (tokens, now, now + (capacity - tokens) / rate)
            return wait

    # -- internals (every method below runs with self._lock held) ---------------------------
    def _sweep(self, now: float) -> None:
        """Now and then, forget what has expired: these maps stay as small as what is live."""
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        self._revoked = {i: at for i, at in self._revoked.items() if at > now}
        self._reserved = {k: held for k, held in self._reserved.items() if held[1] > now}
        # A bucket that has refilled is the same as no bucket: a new one starts full.
        self._buckets = {k: b for k, b in self._buckets.items() if b[2] > now}

    def _queue(self, name: str) -> _Queue:
        state = self._queues.get(name)
        if state is None:
            state = self._queues[name] = _Queue()
        return state

    def _refreshed(self, name: str) -> _Queue:
        """``name``'s state as of now; an unknown queue reads as a throwaway empty one."""
        self._refresh(name, self._clock())
        return self._queues.get(name) or _Queue()

    def _store(self, message: OutboundMessage, now: float) -> None:
        stored = _Stored(
            message.queue, message.payload, message.message_id, message.priority, next(self._seq)
        )
        if message.delay is not None and message.delay > 0:
            due = now + message.delay
            heapq.heappush(self._queue(message.queue).delayed, (due, stored.seq, stored))
            self._wake(message.queue, due)  # waiters may plan to sleep past the due time
        else:
            self._make_ready(stored)

    def _make_ready(self, message: _Stored) -> None:
        heapq.heappush(self._queue(message.queue).ready, (-message.priority, message.seq, message))
        self._wake(message.queue, -math.inf)

    def _wake(self, queue: str, at: float) -> None:
        """Wake the waiters on ``queue`` that planned to sleep past ``at``, to re-plan."""
        for waiter in self._waiters:
            if queue in waiter.queues and at < waiter.wake_at:
                waiter.wake_at = -math.inf  # woken once is enough
                # RuntimeError: its loop is closed, so that fetch will never resume anyway.
                with contextlib.suppress(RuntimeError):
                    waiter.loop.call_soon_threadsafe(_resolve, waiter.future)

    def _refresh(self, name: str, now: float) -> None:
        """Move due delayed messages to ready and take back leases past their deadline."""
        state = self._queues.get(name)
        if state is None:
            return
        while state.delayed and state.delayed[0][0] <= now:
            _, _, message = heapq.heappop(state.delayed)
            self._make_ready(message)
        while state.expiries:
            deadline, token = state.expiries[0]
            lease = self._leases.get(token)
            if lease is not None and lease.deadline == deadline and deadline > now:
                break  # the earliest live lease has not expired
            heapq.heappop(state.expiries)
            if lease is None or lease.deadline != deadline:
                continue  # stale entry: the lease was ended or extended since
            del self._leases[token]
            self._expire(lease.message, now)

    def _expire(self, message: _Stored, now: float) -> None:
        if message.delivery_count >= self.delivery_limit:
            detail = (
                f"lease expired without an outcome on delivery {message.delivery_count} "
                f"(delivery_limit={self.delivery_limit})"
            )
            # No caller is settling it: hand it back to whoever fetches (the worker tells
            # those waiting on the call).
            self._hand_back(self._bury(message, DeadLetterReason.DELIVERY_LIMIT, detail, now))
        else:
            self._make_ready(message)

    def _next_due(self, names: Sequence[str]) -> float:
        """The earliest eta or lease deadline on ``names``: when a fetch must look again."""
        due = math.inf
        for name in names:
            state = self._queues.get(name)
            if state is None:
                continue
            if state.delayed:
                due = min(due, state.delayed[0][0])
            if state.expiries:  # may be a stale entry; waking early is harmless
                due = min(due, state.expiries[0][0])
        return due

    def _take(self, names: list[str], limit: int, now: float) -> list[Delivery]:
        # Start at a different queue on each call and rotate after each pick, so among
        # equal priorities no requested queue starves; a higher priority always wins.
        start = self._rotation % len(names)
        self._rotation += 1
        order = names[start:] + names[:start]
        taken: list[Delivery] = []
        while len(taken) < limit:
            # (-priority of the head, place in the rotation): the smallest is served next.
            heads = [
                (state.ready[0][0], place, name)
                for place, name in enumerate(order)
                if (state := self._queues.get(name)) is not None and state.ready
            ]
            if not heads:
                break
            name = min(heads)[2]
            _, _, message = heapq.heappop(self._queues[name].ready)
            taken.append(self._lease(message, now))
            order.remove(name)
            order.append(name)
        return taken

    def _lease(self, message: _Stored, now: float) -> Delivery:
        token = uuid.uuid4().hex
        message.delivery_count += 1
        deadline = now + self.lease_seconds
        self._leases[token] = _Lease(message, deadline)
        heapq.heappush(self._queue(message.queue).expiries, (deadline, token))
        self._wake(message.queue, deadline)  # a waiter must notice this lease expiring
        return Delivery(
            broker=self,
            queue=message.queue,
            payload=message.payload,
            message_id=message.message_id,
            delivery_count=message.delivery_count,
            priority=message.priority,
            token=token,
        )

    def _live_lease(self, delivery: Delivery, now: float) -> _Lease | None:
        """``delivery``'s lease if it still holds one: known token, deadline not reached."""
        lease = self._leases.get(delivery.token)
        if lease is not None:
            self._refresh(lease.message.queue, now)  # takes the lease back if it expired
        return self._leases.get(delivery.token)

    def _end_lease(self, delivery: Delivery, now: float) -> _Stored | None:
        """End ``delivery``'s lease and return its message; None if the lease was lost."""
        lease = self._live_lease(delivery, now)
        if lease is None:
            return None
        del self._leases[delivery.token]
        return lease.message

    def _bury(
        self, message: _Stored, reason: DeadLetterReason, detail: str, now: float
    ) -> DeadLetter:
        entry_id = uuid.uuid4().hex
        letter = DeadLetter(
            entry_id=entry_id,
            queue=message.queue,
            message_id=message.message_id,
            payload=message.payload,
            reason=reason,
            detail=detail,
            delivery_count=message.delivery_count,
            dead_lettered_at=now,
            priority=message.priority,
        )
        self._queue(message.queue).dead[entry_id] = (letter, message.priority)
        return letter

    async def _sleep(self, waiter: _Waiter, delay: float) -> None:
        handle = waiter.loop.call_later(delay, _resolve, waiter.future)
        try:
            await waiter.future
        finally:
            handle.cancel()
