"""The Lua scripts of the kombu-layout engine, read from package data (``scripts/*.lua``).

Each ``.lua`` file opens with its KEYS/ARGV contract. redis-py runs them by SHA and
loads them again after a server restart (``NOSCRIPT``). Engine helper: standard library.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

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


@cache
def source(name: str) -> str:
    if name not in NAMES:
        raise KeyError(name)
    scripts = resources.files(__package__).joinpath("scripts")
    return scripts.joinpath(f"{name}.lua").read_text("utf-8")
