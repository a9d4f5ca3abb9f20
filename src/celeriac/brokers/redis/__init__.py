"""The Redis broker: ready messages on Redis Streams with consumer groups, broker-side
delays in a sorted set, leases as pending entries, dead letters in a stream.

Engine: imports ``brokers.base``, ``_redis`` and redis-py; never the app or other engines.
"""

from celeriac.brokers.redis.broker import RedisBroker

__all__ = ["RedisBroker"]
