"""The verbs of celeriac's own shared state, handed to another broker.

Revocations, idempotency keys, token buckets, leases (beat's leader) and topics have no
place in kombu's layout and no Celery worker reads them. ``KombuRedisBroker`` is given a
broker for them when it is built (``app.connections`` gives the Redis Streams engine on the
same server, its keys under ``<global_keyprefix>_celeriac``) and forwards these verbs to it.
A mixin of ``KombuRedisBroker``; imports only ``brokers.base``.
"""

from __future__ import annotations

from collections.abc import Sequence

from celeriac.brokers.base import Broker, Subscription, Topic


class SharedState:
    """Forwards the shared-state verbs of ``Broker`` to ``shared``."""

    shared: Broker

    def _revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        self.shared.revoke(ids, ttl, terminate=terminate, signal=signal)

    def revoked_ids(self) -> dict[str, float]:
        return self.shared.revoked_ids()

    def _publish_topic(self, topic: Topic, payload: bytes) -> None:
        self.shared.publish_topic(topic, payload)

    async def _publish_topic_async(self, topic: Topic, payload: bytes) -> None:
        await self.shared.publish_topic_async(topic, payload)

    async def _subscribe(self, topic: Topic, history: bool) -> Subscription:
        return await self.shared.subscribe(topic, history=history)

    def reserve(self, key: str, value: str, ttl: float) -> str | None:
        return self.shared.reserve(key, value, ttl)

    def reserve_many(self, items: Sequence[tuple[str, str]], ttl: float) -> list[str | None]:
        return self.shared.reserve_many(items, ttl)

    def release(self, key: str, value: str) -> bool:
        return self.shared.release(key, value)

    async def acquire(self, key: str, rate: float, capacity: float) -> float:
        return await self.shared.acquire(key, rate, capacity)

    def _hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        return self.shared.hold_lease(name, holder, ttl)

    def drop_lease(self, name: str, holder: str) -> bool:
        return self.shared.drop_lease(name, holder)

    def check_safety(self) -> str | None:
        """The shared broker's check: it runs on the same Redis server."""
        return self.shared.check_safety()
