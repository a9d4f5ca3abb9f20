"""The clients a Redis-backed broker engine talks through, with its Lua scripts registered:
one synchronous client, made on first use, and one asyncio client per event loop (a
``redis.asyncio`` client belongs to the loop it first connected on); and the errors a
broker engine raises for redis-py's. Shared by the Redis engines so that each only says
which scripts it has. Imports redis-py, ``_redis``, ``config.tls`` and the exceptions.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable, Sequence
from functools import cache
from importlib import resources
from typing import Any

import redis
import redis.asyncio

from celeriac._forksafe import ForkSafeLock
from celeriac._redis import (
    REFUSED,
    UNAVAILABLE,
    RedisTarget,
    cluster_problem,
    reason,
    redact,
    refused_message,
)
from celeriac._redis_held import HeldConnections
from celeriac.config import tls
from celeriac.exceptions import (
    BrokerAccessRefused,
    BrokerConnectionError,
    BrokerError,
    ImproperlyConfigured,
)

Scripts = dict[str, Any]  # script name -> redis-py Script, callable on its client


def script_source(package: str, names: Sequence[str]) -> Callable[[str], str]:
    """A reader of ``package``'s ``scripts/<name>.lua`` files (package data), cached."""

    @cache
    def source(name: str) -> str:
        if name not in names:
            raise KeyError(name)
        folder = resources.files(package).joinpath("scripts")
        return folder.joinpath(f"{name}.lua").read_text("utf-8")

    return source


class ScriptedClients:
    """``target``'s clients with the scripts ``names`` (read by ``source``) registered on
    each. ``connecting`` wraps the making of the synchronous client (a cluster client
    connects at once, to read the cluster's layout), e.g. to turn errors into the engine's."""

    def __init__(
        self,
        target: RedisTarget,
        names: Sequence[str],
        source: Callable[[str], str],
        connecting: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        self.target, self.names, self.source = target, tuple(names), source
        self._connecting = connecting
        self._sync: redis.Redis | None = None
        self._held: HeldConnections | None = None
        self._making = ForkSafeLock()
        self._sync_scripts: Scripts = {}
        self._async: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[redis.asyncio.Redis, Scripts]
        ] = weakref.WeakKeyDictionary()

    def _register(self, client: Any) -> Scripts:
        return {name: client.register_script(self.source(name)) for name in self.names}

    @property
    def sync(self) -> redis.Redis:
        client = self._sync
        if client is None:
            # Threads whose first calls come at once share one client: a client made by
            # each, then dropped, would close its pool under the call still using it.
            with self._making:
                if self._sync is None:
                    with self._connecting():
                        made = self.target.sync_client()
                    self._sync_scripts = self._register(made)
                    self._held = HeldConnections(made)
                    self._sync = made  # last: whoever sees it sees its scripts and held
                client = self._sync
        return client

    @property
    def sync_scripts(self) -> Scripts:
        _ = self.sync
        return self._sync_scripts

    @property
    def sync_held(self) -> HeldConnections:
        """The synchronous client's held connections, for its most frequent command."""
        _ = self.sync
        assert self._held is not None
        return self._held

    def for_running_loop(self) -> tuple[redis.asyncio.Redis, Scripts]:
        """The running loop's asyncio client and its scripts."""
        loop = asyncio.get_running_loop()
        entry = self._async.get(loop)
        if entry is None:
            client = self.target.async_client()
            entry = self._async[loop] = (client, self._register(client))
        return entry

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync, self._held = None, None

    async def close_running_loop(self) -> None:
        """Close the running loop's asyncio client, if it has one."""
        entry = self._async.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[0].aclose()


def broker_down(exc: Exception, url: str, target: RedisTarget) -> BrokerConnectionError:
    """The error for a broker that cannot be reached (or refuses the login, or the TLS
    handshake: retrying cannot fix those, so they are refusals)."""
    if isinstance(exc, REFUSED):
        return BrokerAccessRefused(refused_message("Redis broker", url, exc))
    handshake = tls.refused_handshake(
        exc, what="Redis broker", url=redact(url), setting="broker_use_ssl", prefix="ssl_"
    )
    if handshake is not None:
        return BrokerAccessRefused(f"{handshake}.")
    return BrokerConnectionError(
        f"cannot reach the Redis broker at {redact(url)}: {reason(exc)}. Check that "
        f"redis-server is running and the URL (host, port, password, db) is right."
        + target.tls_hint(exc, "broker_use_ssl")
    )


def broker_error(exc: Exception, url: str, target: RedisTarget) -> Exception:
    """The celeriac error for a driver error at a broker engine's boundary (``exc`` itself
    for any other): also for the replies of a pipeline that failed one by one."""
    if isinstance(exc, BrokerConnectionError):  # (an OSError: said once, by an inner call)
        return exc
    if isinstance(exc, UNAVAILABLE):  # (a refused login too: redis-py makes it a ConnectionError)
        return broker_down(exc, url, target)
    if isinstance(exc, redis.exceptions.RedisClusterException):
        problem = cluster_problem(exc, url)
        return exc if problem is None else ImproperlyConfigured(problem)
    if isinstance(exc, redis.exceptions.OutOfMemoryError):
        return BrokerError(
            f"the Redis broker at {redact(url)} is out of memory (maxmemory reached; "
            f"noeviction refuses new writes), so this was not stored. Workers keep "
            f"draining the queues; raise maxmemory or add consumers. ({exc})"
        )
    return exc
