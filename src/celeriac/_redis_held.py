"""``HeldConnections``: a synchronous client's most frequent command, written on a
connection taken from its pool and kept, instead of through the client's call.

A ``delay()`` on Redis is one ``XADD``. Around it redis-py's client call takes a
connection from its pool (behind a lock, polled for stray data first), runs its retry
policy and reports to its observability hooks: about a quarter of the call's time on a
loopback Redis (``python -m bench.enqueue_calls``). Held connections skip that part; the
command, its packing and the reply's parsing stay redis-py's.

Up to ``MAX_HELD`` connections are held (never more than half the pool's
``max_connections``, so the ordinary path keeps room), one per thread sending at that
moment; a call that finds every one out takes the client's ordinary path. A connection that fails (a
restart, a killed client, a timeout) is dropped and the call made again through the
client's path, which connects anew and retries as its own policy says: the same
at-least-once behaviour as redis-py's retry. An error reply raises as redis-py raises
it and the connection stays. A forked child forgets its parent's connections.
A cluster client (which has no single pool) always takes its ordinary path.

Imports redis-py only.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

MAX_HELD = 4  # threads sending at once that get a held connection; more take the pool's


def held_limit(pool: Any, wanted: int) -> int:
    """Connections to hold from ``pool``: ``wanted``, but never more than half its
    ``max_connections``, so that calls taking redis-py's own path find one (0 without a
    pool: a cluster client's calls always take that path)."""
    if pool is None:
        return 0
    most = getattr(pool, "max_connections", None) or 2 * wanted
    return min(wanted, most // 2)


class HeldConnections:
    """``client.execute_command`` on connections held from ``client``'s pool."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._pool: Any = getattr(client, "connection_pool", None)
        self._limit = held_limit(self._pool, MAX_HELD)
        self._idle: list[Any] = []  # held, and no call is using them (append/pop: atomic)
        self._held = 0
        self._taking = threading.Lock()  # (replaced with the rest after a fork, below)
        self._pid = os.getpid()

    def execute(self, *args: Any) -> Any:
        connection = self._take()
        if connection is None:
            return self.client.execute_command(*args)
        try:
            connection.send_packed_command(connection.pack_command(*args))
            reply = connection.read_response()
        except ResponseError:
            self._idle.append(connection)  # (the reply was read: the connection is fine)
            raise
        except (RedisConnectionError, RedisTimeoutError, OSError):
            self._drop(connection)
            return self.client.execute_command(*args)
        except BaseException:
            self._drop(connection)  # cut off mid-call: its state is unknown
            raise
        self._idle.append(connection)
        return reply

    def _take(self) -> Any:
        """An idle held connection, one more from the pool while fewer than the limit are
        held, or None when every one is out (or there is no pool)."""
        if self._pid != os.getpid():  # a forked child: the sockets are the parent's
            self._idle, self._held, self._pid = [], 0, os.getpid()
            self._taking = threading.Lock()
        try:
            return self._idle.pop()
        except IndexError:
            pass
        if self._held >= self._limit:
            return None
        with self._taking:
            if self._held >= self._limit:
                return None
            self._held += 1
        try:
            return self._pool.get_connection()
        except BaseException:
            with self._taking:
                self._held -= 1
            raise

    def _drop(self, connection: Any) -> None:
        with self._taking:
            self._held -= 1
        connection.disconnect()
        self._pool.release(connection)  # (the pool makes a fresh one in its place)


__all__ = ["MAX_HELD", "HeldConnections", "held_limit"]
