"""The Lua scripts of the Redis broker, read from package data (``scripts/*.lua``).

Each ``.lua`` file opens with its KEYS/ARGV contract. redis-py runs them by SHA and
loads them again after a server restart (``NOSCRIPT``). A pipeline that runs scripts goes
through ``execute``/``execute_async``, which load them and send again what a server
refused for not knowing a script: a cluster node that took over from its master after a
failover has none (Redis does not copy loaded scripts to replicas).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from celeriac._redis_clients import script_source

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
    "refuse",
    "revoke",
    "revoked",
    "reserve",
    "release",
    "acquire",
    "hold_lease",
    "drop_lease",
)


source = script_source(__package__, NAMES)


Step = Callable[[Any], Any]  # queues one command (or script call) on the pipeline given


def _sort(replies: list[Any], chosen: list[int], out: Sequence[Any]) -> list[int]:
    """Store the replies of ``chosen``; return those refused for a missing script."""
    missing = []
    for index, reply in zip(chosen, out, strict=True):
        if isinstance(reply, NoScriptError):
            missing.append(index)
        replies[index] = reply
    return missing


def _raise_first(replies: list[Any]) -> list[Any]:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies


def execute(client: Any, steps: Sequence[Step], scripts: Iterable[Any]) -> list[Any]:
    """Run ``steps`` in one pipeline (no transaction); raise the first error, as
    ``execute()`` does, once every step has run. Steps refused with NOSCRIPT run again,
    once, after ``scripts`` were loaded (on every master of a cluster)."""
    replies: list[Any] = [None] * len(steps)
    chosen = list(range(len(steps)))
    for attempt in range(2):
        with client.pipeline(transaction=False) as pipe:
            for index in chosen:
                steps[index](pipe)
            chosen = _sort(replies, chosen, pipe.execute(raise_on_error=False))
        if not chosen or attempt:
            break
        for script in scripts:
            script.sha = client.script_load(script.script)
    return _raise_first(replies)


async def execute_async(client: Any, steps: Sequence[Step], scripts: Iterable[Any]) -> list[Any]:
    """``execute`` on an asyncio client."""
    replies: list[Any] = [None] * len(steps)
    chosen = list(range(len(steps)))
    for attempt in range(2):
        async with client.pipeline(transaction=False) as pipe:
            for index in chosen:
                staged = steps[index](pipe)
                # A script queues through a coroutine; a command returns the pipeline,
                # which is awaitable too, but awaiting a cluster's pipeline empties it.
                if inspect.iscoroutine(staged):
                    await staged
            chosen = _sort(replies, chosen, await pipe.execute(raise_on_error=False))
        if not chosen or attempt:
            break
        for script in scripts:
            script.sha = await client.script_load(script.script)
    return _raise_first(replies)
