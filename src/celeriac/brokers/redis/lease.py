"""Leases on Redis (``Broker.hold_lease``/``drop_lease``): one script per verb on one
hash per lease, timed by the Redis server's clock (``scripts/hold_lease.lua``); and
``reserve_many``, the reserve script for several keys in one pipeline (each key may be in
its own cluster slot: a pipeline, not a transaction).

A mixin of ``RedisBroker``, kept apart so the broker module stays small. Engine helper:
imports only ``brokers.base`` and its own ``scripts``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from celeriac.brokers.base import check_ttl
from celeriac.brokers.redis.scripts import execute


class RedisLeases:
    """``hold_lease``/``drop_lease`` for ``RedisBroker`` (which supplies ``_script``,
    ``_guard`` and ``shared``)."""

    def _hold_lease(self, name: str, holder: str, ttl: float) -> int | None:
        broker: Any = self
        with broker._guard():
            token = broker._script("hold_lease")(
                keys=[broker.shared.lease(name)], args=[holder, max(1, int(ttl * 1000))]
            )
        return None if token is None else int(token)

    def reserve_many(self, items: Sequence[tuple[str, str]], ttl: float) -> list[str | None]:
        check_ttl(ttl, "an idempotency key's ttl")
        broker: Any = self
        with broker._guard():
            script = broker._script("reserve")
            ms = max(1, int(ttl * 1000))

            def step(key: str, value: str) -> Callable[[Any], Any]:
                return lambda pipe: script(
                    keys=[broker.shared.idempotency(key)], args=[value, ms], client=pipe
                )

            held = execute(broker.client, [step(key, value) for key, value in items], [script])
        return [
            None if h is None else (h.decode() if isinstance(h, bytes) else str(h)) for h in held
        ]

    def drop_lease(self, name: str, holder: str) -> bool:
        broker: Any = self
        with broker._guard():
            dropped = broker._script("drop_lease")(keys=[broker.shared.lease(name)], args=[holder])
        return bool(dropped)
