"""The worker's per-task script calls, sent pre-packed on a connection of their own.

redis-py spends more CPU on a call than Redis spends running the fetch script: it encodes
each argument, takes a connection from its pool (behind a lock), wraps the call in its
retry policy and reply callbacks and reports it to its observability hooks. A worker
fetches and acks once per task or few tasks, with arguments that barely change, so those
calls are packed once per shape (``cache=True``) and written as bytes on one connection
this object holds, the reply read as redis-py reads it. About a third less CPU per call
(``python -m bench.profile --pool prefork``).

What stays redis-py's: a call made while another is out on the held connection, and
every call on a cluster, take the ordinary path; so does the first call after Redis lost
its scripts (NOSCRIPT: a restart, ``SCRIPT FLUSH``), which loads them. An error reply
raises as redis-py raises it, and the connection stays; any other failure (a lost
connection, a cancelled read) drops the connection, and the next call connects anew.
"""

from __future__ import annotations

import os
from typing import Any

import redis.asyncio
from redis.exceptions import NoScriptError, ResponseError

MAX_SHAPES = 256  # packed commands kept (a worker uses a handful: queue x limit x 2)


class PackedCalls:
    """``evalsha`` for one asyncio client, on a connection taken from its pool."""

    def __init__(self, client: Any) -> None:
        self.client = client
        plain = isinstance(client, redis.asyncio.Redis)  # (a cluster client has no pool)
        self._pool: Any = client.connection_pool if plain else None
        self._connection: Any = None
        self._pid = 0
        self._busy = False
        self._shapes: dict[tuple[Any, ...], Any] = {}

    async def evalsha(
        self, script: Any, keys: list[Any], args: list[Any], *, cache: bool = False
    ) -> Any:
        """``script(keys=keys, args=args)``, as redis-py's script object would call it."""
        if self._pool is None or self._busy:
            return await script(keys=keys, args=args)
        self._busy = True
        try:
            connection = await self._held()
            packed = self._pack(connection, script.sha, keys, args, cache)
            try:
                await connection.send_packed_command(packed)
                return await connection.read_response()
            except NoScriptError:
                pass  # (the reply was read: the connection is fine)
            except ResponseError:
                raise
            except BaseException:
                self._connection = None  # its state is unknown: never reused
                await connection.disconnect()
                raise
        finally:
            self._busy = False
        return await script(keys=keys, args=args)  # loads the script, then calls it

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

    async def _held(self) -> Any:
        """The held connection, connected (again after a failure, or in a forked child,
        which must not write on its parent's socket)."""
        if self._connection is None or self._pid != os.getpid():
            assert self._pool is not None
            self._connection = await self._pool.get_connection()
            self._pid = os.getpid()
        return self._connection
