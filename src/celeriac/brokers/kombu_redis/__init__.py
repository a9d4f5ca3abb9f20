"""The kombu-layout Redis broker: kombu's queue lists, ``unacked`` hash and index, so that
celeriac and Celery workers and producers can share queues on one Redis.

Engine: imports ``brokers.base``, ``_redis`` and redis-py; never the app or other engines
(its shared state goes to a broker it is given).
"""

from celeriac.brokers.kombu_redis.broker import KombuRedisBroker

__all__ = ["KombuRedisBroker"]
