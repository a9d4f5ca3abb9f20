"""Leases on Redis (``Broker.hold_lease``/``drop_lease``): one script per verb on one
hash per lease, timed by the Redis server's clock (``scripts/hold_lease.lua``).

A mixin of ``RedisBroker``, kept apart so the broker module stays small. Engine helper:
imports nothing from celeriac but the broker's seam types.
"""

from __future__ import annotations

from typing import Any


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

    def drop_lease(self, name: str, holder: str) -> bool:
        broker: Any = self
        with broker._guard():
            dropped = broker._script("drop_lease")(keys=[broker.shared.lease(name)], args=[holder])
        return bool(dropped)
