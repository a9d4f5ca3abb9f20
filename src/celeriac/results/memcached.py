"""``cache+memcached://``: results in memcached through pymemcache, as Celery's cache store.

Imports ``results.base``, leaves and pymemcache (the extra ``celeriac[memcached]``). Records
carry a one-byte ready flag; a wait polls with backoff (memcached cannot notify). The chord
count is a marker per member (``add``) and one atomic counter (``incr``/``decr``).
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from pymemcache.client.base import PooledClient
from pymemcache.client.hash import HashClient
from pymemcache.client.retrying import RetryingClient
from pymemcache.exceptions import MemcacheError, MemcacheUnexpectedCloseError

from celeriac.exceptions import BackendConnectionError, BackendError, ImproperlyConfigured
from celeriac.results.base import RecordFormat, ResultBackend
from celeriac.results.polling import poll_ready

# memcached reads an expiry above 30 days as a Unix time, not a number of seconds.
MAX_RELATIVE_EXPIRES = 30 * 24 * 60 * 60
# Keys are at most 250 bytes of printable ASCII; longer or other ones are stored by hash.
MAX_KEY = 200
KEY_PREFIX = "celeriac:result:"
READY, UNREADY = b"R", b"U"  # the first byte of every record: ended, or not yet
# A chord's counter starts here: joins add one, tasks added to the chord take one away, and
# memcached's decr stops at 0, so the counter must start well above any chord's size.
COUNTER_START = 1 << 40
# Celery's client defaults: writes wait for the server's answer, and a dead server fails
# a call after seconds instead of hanging it.
DEFAULT_OPTIONS: dict[str, Any] = {"default_noreply": False, "connect_timeout": 5.0, "timeout": 5.0}
_RETRY_OPTIONS = {"retry_attempts": "attempts", "retry_delay": "retry_delay",
                  "retry_for": "retry_for", "do_not_retry_for": "do_not_retry_for"}  # fmt: skip
_PYLIBMC_ONLY = ("behaviors", "binary")


def memcached_client(servers: Sequence[str], options: Mapping[str, Any]) -> Any:
    """A thread-safe pymemcache client for ``servers`` (several: keys hashed across them),
    with ``cache_backend_options`` as its options (``retry_*``: a ``RetryingClient``)."""
    servers = [server for server in servers if server]
    if not servers:
        raise ImproperlyConfigured(
            "the memcached result store names no server: set result_backend="
            "'cache+memcached://127.0.0.1:11211/' (several: 'cache+memcached://h1:11211;h2:11211/')"
        )
    options = {**DEFAULT_OPTIONS, **without_pylibmc_options(options)}
    retry = {
        _RETRY_OPTIONS[name]: options.pop(name) for name in list(options) if name in _RETRY_OPTIONS
    }
    try:
        if len(servers) > 1:
            client: Any = HashClient(servers, **{"use_pooling": True, **options})
        else:
            client = PooledClient(servers[0], **options)
        return RetryingClient(client, **retry) if "attempts" in retry else client
    except (TypeError, ValueError) as exc:
        raise ImproperlyConfigured(
            f"cache_backend_options were refused by pymemcache's client ({exc}): use the "
            f"options of pymemcache's PooledClient (one server) or HashClient (several), or "
            f"retry_attempts, retry_delay, retry_for, do_not_retry_for"
        ) from exc


def without_pylibmc_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` less pylibmc's, which Celery drops too, with a warning for each."""
    kept = dict(options)
    for name in _PYLIBMC_ONLY:
        if kept.pop(name, None) is not None:
            warnings.warn(
                f"cache_backend_options[{name!r}] is a pylibmc option; pymemcache has no such "
                f"option, so it has no effect: remove it",
                DeprecationWarning,
                stacklevel=4,
            )
    return kept


def memcached_expiry(ttl: float | None) -> int:
    """memcached's expiry for ``ttl`` seconds: 0 never expires, as ``result_expires=None``."""
    if ttl is None or ttl <= 0:
        return 0
    seconds = max(1, math.ceil(ttl))  # under a second must not become 0 (never)
    return seconds if seconds <= MAX_RELATIVE_EXPIRES else int(time.time()) + seconds


class MemcachedBackend(ResultBackend):
    """Results in one memcached server, or spread by key over several."""

    schemes = ("cache+memcached", "cache+memcache", "cache+pymemcache", "cache+pylibmc")

    def __init__(
        self,
        servers: Sequence[str],
        *,
        options: Mapping[str, Any] | None = None,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        record_format: RecordFormat | None = None,
    ) -> None:
        super().__init__(
            expires=expires,
            serializer=serializer,
            accept_content=accept_content,
            record_format=record_format,
        )
        self.servers = [server for server in servers if server]
        self._options = without_pylibmc_options(options or {})  # warned once, not per child
        self._client = memcached_client(self.servers, self._options)  # bad options fail here
        self._pid = os.getpid()
        self._fork_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<MemcachedBackend {';'.join(self.servers)}>"

    # -- calls ----------------------------------------------------------------------------------
    def _call(self, command: str, *args: Any, **kwargs: Any) -> Any:
        """The client's ``command``; its failures as the store's errors, naming the servers."""
        try:
            return getattr(self._process_client(), command)(*args, **kwargs)
        except (OSError, MemcacheUnexpectedCloseError) as exc:
            raise self._unreachable(command, exc) from exc
        except MemcacheError as exc:
            if type(exc) is MemcacheError:  # HashClient's "all servers seem to be down"
                raise self._unreachable(command, exc) from exc
            hint = ""
            if "too large" in str(exc):
                hint = (
                    ": the record is over memcached's item size (1 MiB unless memcached -I "
                    "sets more); return less from the task, or raise the server's limit"
                )
            raise BackendError(f"memcached {command} failed: {exc!r}{hint}") from exc

    def _unreachable(self, command: str, exc: Exception) -> BackendConnectionError:
        return BackendConnectionError(
            f"memcached at {';'.join(self.servers)} could not be reached ({command}: "
            f"{exc!r}). Check that memcached runs there and that result_backend names "
            f"its host and port"
        )

    def _process_client(self) -> Any:
        """This process's client: a forked child (a prefork worker's) makes its own rather
        than talk over the connections it inherited, which its parent still uses."""
        if self._pid != os.getpid():
            with self._fork_lock:
                if self._pid != os.getpid():
                    self._client = memcached_client(self.servers, self._options)
                    self._pid = os.getpid()
        return self._client

    @staticmethod
    def _key(key: str) -> str:
        full = KEY_PREFIX + key
        if len(full) <= MAX_KEY and full.isascii() and full.isprintable() and " " not in full:
            return full
        return f"{KEY_PREFIX}sha256:{hashlib.sha256(key.encode()).hexdigest()}"

    # -- records --------------------------------------------------------------------------------
    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        flagged = (READY if ready else UNREADY) + value
        self._call("set", self._key(key), flagged, memcached_expiry(ttl))

    def _get(self, key: str) -> bytes | None:
        raw: bytes | None = self._call("get", self._key(key))
        return None if raw is None else raw[1:]

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        names = [self._key(key) for key in keys]
        found: dict[str, bytes] = self._call("get_many", names) if names else {}
        return [found[name][1:] if name in found else None for name in names]

    def _delete(self, key: str) -> None:
        self._call("delete", self._key(key), noreply=False)

    def _get_ready(self, key: str) -> bytes | None:
        raw: bytes | None = self._call("get", self._key(key))
        return raw[1:] if raw is not None and raw[:1] == READY else None

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        # Polling: memcached has no notifications.
        return poll_ready(lambda: self._get_ready(key), timeout)

    # -- chords ---------------------------------------------------------------------------------
    # A member's marker is added once (add fails for a redelivered member, which then only
    # asks whether it completed the chord); the counter's incr is atomic, so exactly one
    # member's incr reaches the start plus the size: that member applies the body.
    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        expire = memcached_expiry(ttl)
        owner = self._key(f"{key}:owner")
        if not self._call("add", self._key(f"{key}:member:{member}"), b"1", expire, noreply=False):
            found: bytes | None = self._call("get", owner)
            return found == member.encode()
        if self._count(key, 1, expire) != COUNTER_START + size:
            return False
        self._call("set", owner, member.encode(), expire, noreply=False)
        return True

    def _grow(self, key: str, by: int, ttl: float | None) -> None:
        self._count(key, -by, memcached_expiry(ttl))

    def _count(self, key: str, delta: int, expire: int) -> int:
        counter = self._key(key)
        command = "incr" if delta >= 0 else "decr"
        for _ in range(3):  # made if missing; gone again before the incr only if evicted
            self._call("add", counter, str(COUNTER_START).encode(), expire, noreply=False)
            value = self._call(command, counter, abs(delta), noreply=False)
            if value is not None:
                return int(value)
        raise BackendError(
            f"memcached lost the chord counter {counter!r} as soon as it was made: its server "
            f"is evicting items, or failing. Give memcached more memory (-m), or use Redis or a "
            f"database for chords"
        )

    def close(self) -> None:
        if self._pid == os.getpid():  # a forked child leaves its parent's connections be
            self._call("close")
