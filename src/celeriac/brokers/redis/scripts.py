"""The Lua scripts of the Redis broker, read from package data (``scripts/*.lua``).

Each ``.lua`` file opens with its KEYS/ARGV contract. redis-py runs them by SHA and
loads them again after a server restart (``NOSCRIPT``).
"""

from __future__ import annotations

from functools import cache
from importlib import resources

NAMES = (
    "publish_delayed",
    "publish_high",
    "fetch",
    "settle",
    "ack_many",
    "extend",
    "replay",
    "counts",
    "prune",
    "revoke",
    "revoked",
    "reserve",
    "release",
    "acquire",
    "hold_lease",
    "drop_lease",
)


@cache
def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(name)
    return (
        resources.files(__package__).joinpath("scripts").joinpath(f"{name}.lua").read_text("utf-8")
    )
