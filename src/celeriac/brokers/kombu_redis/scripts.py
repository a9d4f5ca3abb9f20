"""The Lua scripts of the kombu-layout engine, read from package data (``scripts/*.lua``).

Each ``.lua`` file opens with its KEYS/ARGV contract. redis-py runs them by SHA and
loads them again after a server restart (``NOSCRIPT``). Engine helper: ``_redis_clients``.
"""

from __future__ import annotations

from celeriac._redis_clients import script_source

NAMES = (
    "publish",
    "publish_delayed",
    "fetch",
    "settle",
    "extend",
    "expired",
    "restore",
    "replay",
    "counts",
    "unlock",
    "prune",
)


source = script_source(__package__, NAMES)
