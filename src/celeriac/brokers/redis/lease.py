"""Leases on Redis (``Broker.hold_lease``/``drop_lease``): one script per verb on one
hash per lease, timed by the Redis server's clock (``scripts/hold_lease.lua``); and
``reserve_many``, the reserve script for several keys in one pipeline.

A mixin of ``RedisBroker``, kept apart so the broker module stays small. Engine helper:
imports only ``brokers.base``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.brokers.base import check_ttl


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
        script = broker._script("reserve")
        with broker._guard():
            pipe = broker.client.pipeline(transaction=False)
            for key, value in items:
                script(keys=[broker.shared.idempotency(key)], args=[value, max(1, int(ttl * 1000))],
                       client=pipe)  # fmt: skip
            held = pipe.execute()
        return [
            None if h is None else (h.decode() if isinstance(h, bytes) else str(h)) for h in held
        ]

    def drop_lease(self, name: str, holder: str) -> bool:
        broker: Any = self
        with broker._guard():
            dropped = broker._script("drop_lease")(keys=[broker.shared.lease(name)], args=[holder])
        return bool(dropped)
