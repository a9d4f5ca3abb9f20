"""The worker's per-task script calls, sent pre-packed on connections of their own.

redis-py spends more CPU on a call than Redis spends running the fetch script: it encodes
each argument, takes a connection from its pool (behind a lock), wraps the call in its
retry policy and reply callbacks and reports it to its observability hooks. A worker
fetches and acks once per task or few tasks, with arguments that barely change, so those
calls are packed once per shape (``cache=True``) and written as bytes on a connection
this object holds (a few: the fetch and the acks are often out at once), the reply read
as redis-py reads it. About a third less CPU per call
(``python -m bench.profile --pool prefork``).

What stays redis-py's: a call made while every held connection is out, and every call
on a cluster, take the ordinary path. A call that finds Redis without its script
(NOSCRIPT: a restart, ``SCRIPT FLUSH``) loads it on its own connection and calls again.
An error reply raises as redis-py raises it, and the connection stays; any other failure
(a lost connection, a cancelled read) drops the connection, and the next call connects
anew.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

from celeriac._redis_held import held_limit

MAX_SHAPES = 256  # packed commands kept (a worker uses a handful: queue x limit x 2)
# Connections held: a fetch and a batch of settles are often out at once, and a call that
# finds every held one out takes redis-py's path, a third dearer.
MAX_HELD = 3


class PackedCalls:
    """``evalsha`` for one asyncio client, on connections taken from its pool and held."""

    def __init__(self, client: Any) -> None:
        self.client = client
        plain = isinstance(client, redis.asyncio.Redis)  # (a cluster client has no pool)
        self._pool: Any = client.connection_pool if plain else None
        self._limit = held_limit(self._pool, MAX_HELD)  # room left for redis-py's path
        self._idle: list[Any] = []  # held connections no call is using now
        self._held = 0  # connections held, in use or idle
        self._pid = 0
        self._shapes: dict[tuple[Any, ...], Any] = {}

    async def evalsha(
        self, script: Any, keys: list[Any], args: list[Any], *, cache: bool = False
    ) -> Any:
        """``script(keys=keys, args=args)``, as redis-py's script object would call it."""
        connection = await self._take() if self._pool is not None else None
        if connection is None:
            return await script(keys=keys, args=args)
        packed = self._pack(connection, script.sha, keys, args, cache)
        try:
            try:
                await connection.send_packed_command(packed)
                reply = await connection.read_response()
            except NoScriptError:
                # Redis lost its scripts (a restart, SCRIPT FLUSH): load it on this same
                # connection, then call again. (Through redis-py it would take one more
                # from the pool, which a small pool may not have while we hold ours.)
                await connection.send_command("SCRIPT", "LOAD", script.script)
                await connection.read_response()
                await connection.send_packed_command(packed)
                reply = await connection.read_response()
        except ResponseError:  # (the reply was read: the connection is fine)
            self._idle.append(connection)
            raise
        except BaseException:
            self._held -= 1  # its state is unknown: never reused
            await connection.disconnect()
            raise
        self._idle.append(connection)
        return reply

    def _pack(
        self, connection: Any, sha: str, keys: list[Any], args: list[Any], cache: bool
    ) -> Any:
        if not cache:
            return connection.pack_command("EVALSHA", sha, len(keys), *keys, *args)
        shape = (sha, *keys, *args)
        packed = self._shapes.get(shape)
        if packed is None:
            packed = connection.pack_command("EVALSHA", sha, len(keys), *keys, *args)
            if len(self._shapes) < MAX_SHAPES:
                self._shapes[shape] = packed
        return packed

    async def _take(self) -> Any:
        """A held connection no call is using (one more is taken from the pool while fewer
        than the limit are held), or None when every one is out. A forked child forgets
        its parent's: it must not write on their sockets."""
        if self._pid != os.getpid():
            self._idle, self._held, self._pid = [], 0, os.getpid()
        if self._idle:
            return self._idle.pop()
        if self._held >= self._limit:
            return None
        assert self._pool is not None
        self._held += 1
        try:
            return await self._pool.get_connection()
        except BaseException:
            self._held -= 1
            raise
