"""Every Redis key the broker uses, built here and nowhere else. The key schema:

    {prefix}:{<queue>}:s<L>      stream, ready and in-flight messages of priority level L
                                 (L = 0..3 for priorities 0-2, 3-5, 6-8, 9); consumer group
                                 "celeriac"; fields m=message id, p=payload,
                                 d=deliveries before this entry (requeue/replay keep counts)
    {prefix}:{<queue>}:delayed   sorted set of messages waiting for their due time (score:
                                 due, ms of Redis server time); member = packed (id, level,
                                 payload, sequence)
    {prefix}:{<queue>}:seq       counter making delayed members unique
    {prefix}:{<queue>}:wake      stream of at most one entry, written when a delayed message
                                 is added, so that blocked consumers re-plan their wait
    {prefix}:{<queue>}:dead      stream of dead letters; fields m, p, r=reason, x=detail,
                                 c=delivery count, t=time (ms), l=level
    {prefix}:{<queue>}:high      string, present while a message may be waiting above level 0:
                                 set with every write to s1..s3, deleted by the fetch that
                                 finds those levels empty, so other fetches read s0 alone
    {prefix}:{<queue>}:reap      hash: per level, where the scan for expired leases goes
                                 on at the next fetch (so every pending entry is visited)

State shared by the whole cluster, not by one queue:

    {prefix}:revoked             sorted set of revoked task ids (score: when the revocation
                                 ends, ms of Redis server time); expires with its last member
    {prefix}:topic:<name>        pub/sub channel of a broadcast topic (``channel``), e.g.
                                 ``celeriac.revocations`` (``messages.revocation``'s JSON)
    {prefix}:stream:<name>       stream of a stream topic, capped by XADD MAXLEN ~ keep
    {prefix}:idem:<key>          string: the task id an idempotency key was reserved for,
                                 expiring after the key's ttl
    {prefix}:bucket:<key>        hash: a shared token bucket (t = tokens, a = when t was
                                 counted, seconds of Redis server time), expiring once full
    {prefix}:lease:<name>        hash: a lease (h = holder, t = fencing token, e = when it
                                 ends, ms of Redis server time); kept so the token grows

``{<queue>}`` is a hash tag: all keys of one queue live in one Redis Cluster slot, so every
script touches one slot; each script on shared state touches one key. Imports nothing
from celeriac.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

GROUP = "celeriac"
LEVELS = 4


def level_of(priority: int) -> int:
    """Priority 0..9 (9 first) -> stream level 0..3 (3 first)."""
    return min(priority // 3, LEVELS - 1)


def priority_of(level: int) -> int:
    """The priority a delivery from ``level`` reports (the lowest of the level's range)."""
    return level * 3


@dataclass(frozen=True)
class QueueKeys:
    """The keys of one queue."""

    prefix: str
    queue: str

    @functools.cached_property
    def base(self) -> str:
        return f"{self.prefix}:{{{self.queue}}}"

    def stream(self, level: int) -> str:
        return f"{self.base}:s{level}"

    @functools.cached_property
    def streams(self) -> tuple[str, ...]:
        """Highest level first: the order a fetch reads them in."""
        return tuple(self.stream(level) for level in reversed(range(LEVELS)))

    @functools.cached_property
    def delayed(self) -> str:
        return f"{self.base}:delayed"

    @functools.cached_property
    def seq(self) -> str:
        return f"{self.base}:seq"

    @functools.cached_property
    def wake(self) -> str:
        return f"{self.base}:wake"

    @functools.cached_property
    def dead(self) -> str:
        return f"{self.base}:dead"

    @functools.cached_property
    def reap(self) -> str:
        return f"{self.base}:reap"

    @functools.cached_property
    def high(self) -> str:
        return f"{self.base}:high"

    def all(self) -> list[str]:
        return [*self.streams, self.delayed, self.seq, self.wake, self.dead, self.reap, self.high]


@dataclass(frozen=True)
class SharedKeys:
    """The keys (and the channel) that are not tied to one queue."""

    prefix: str

    @property
    def revoked(self) -> str:
        return f"{self.prefix}:revoked"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}:idem:{key}"

    def bucket(self, key: str) -> str:
        return f"{self.prefix}:bucket:{key}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}:lease:{name}"
