"""``redis://`` results. Keys (P = key_prefix: "celeriac", or ``key_prefix`` in
result_backend_transport_options), each expiring after ``expires``:
``P:result:task:<id>``, ``P:result:group:<id>``: hash {value, ready: 0|1};
``P:result:chord:<id>``: set of ended header task ids, ``{P:result:chord:<id>}:owner``: the
one that completed it (see ``_JOIN``), ``{…}:grown``: tasks added to it (``_grow``), these
after ``chord_ttl``; the braces put the three in one cluster slot (``_redis.beside``);
channel ``P:ready:<key>``: published when ready. A record format with ``plain_values``
(Celery's) lays records out as Celery's Redis store does instead: each a string under
``stored_key`` (``SET`` with ``PX``), every write published with the record on the channel
of the key's name, and readiness read from the record's state.
Every write is one command or one script on one slot, so a Redis Cluster
(``redis+cluster://``) stores the same keys. Waits share one pubsub connection and reader
thread. Imports results.base, _redis, _redis_clients (its client and scripts), leaves.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, cast

import redis
import redis.exceptions

from celeriac._redis import (
    CLUSTER_SCHEMES,
    UNAVAILABLE,
    beside,
    check_options,
    cluster_problem,
    parse_target,
    reason,
    redact,
)
from celeriac._redis_clients import ScriptedClients
from celeriac.config import tls
from celeriac.exceptions import BackendConnectionError, ImproperlyConfigured
from celeriac.results.base import RecordFormat, ResultBackend

logger = logging.getLogger(__name__)

# Larger values are announced with an empty message and fetched with HMGET: a huge
# message could overflow Redis's pubsub output buffer limit and cut the connection.
_INLINE_LIMIT = 64 * 1024
# How long close() lets the listener thread finish after cutting its socket.
_CLOSE_GRACE = 5.0
# Seconds of silence before the listener PINGs (transport option listener_keepalive).
KEEPALIVE = 15.0


# KEYS[1]: the set of members; KEYS[2]: the member that completed it; KEYS[3]: how many
# members were added to the size (``_grow``). ARGV[1]: member; ARGV[2]: size; ARGV[3]: TTL
# in ms (0: none). Returns 1 for the member whose arrival made the set reach ``size`` plus
# the added ones (again on a repeated call), else 0.
_JOIN = """
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = tonumber(ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', KEYS[1], ttl) end
local size = tonumber(ARGV[2]) + tonumber(redis.call('GET', KEYS[3]) or '0')
if redis.call('SCARD', KEYS[1]) < size then return 0 end
local owner = redis.call('GET', KEYS[2])
if not owner then
  if ttl > 0 then redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
  else redis.call('SET', KEYS[2], ARGV[1]) end
  return 1
end
if owner == ARGV[1] then return 1 end
return 0
"""


# KEYS[1]: the record. ARGV[1]: value; ARGV[2]: 1 when the state is final; ARGV[3]: TTL in
# ms, or 0 to keep the record (PERSIST); ARGV[4]: the channel to PUBLISH on when final;
# ARGV[5]: the message (the value, or "" when too large to send inline). One script: the
# record, its TTL and the wake-up land together, on one server or one cluster slot.
_STORE = """
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'ready', ARGV[2])
if ARGV[3] == '0' then redis.call('PERSIST', KEYS[1])
else redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
if ARGV[2] == '1' then redis.call('PUBLISH', ARGV[4], ARGV[5]) end
return 1
"""


_SCRIPTS = {"join": _JOIN, "store": _STORE}


def _ms(seconds: float) -> int:
    return max(1, int(seconds * 1000))


class _Waiter:
    """One caller blocked in ``_wait``; woken to look again (or told why it cannot)."""

    __slots__ = ("channel", "ended", "session", "ticket", "value", "wake")

    def __init__(self, session: _Session, channel: bytes, ticket: int) -> None:
        self.session = session
        self.channel = channel
        self.ticket = ticket  # the SUBSCRIBE reply (count) after which the caller may GET
        self.wake = threading.Event()
        self.value: bytes | None = None  # the record, when the notification carried it
        self.ended: str | None = None  # "lost" (connection failed) or "closed"


class _Channel:
    """Waiters on one channel, and how many SUBSCRIBEs were sent and confirmed on it."""

    __slots__ = ("acked", "sent", "waiters")

    def __init__(self) -> None:
        self.waiters: list[_Waiter] = []
        self.sent = 0
        self.acked = 0


class _Session:
    """One dedicated pubsub connection and the thread reading it; replaced whole on failure."""

    def __init__(self, connection: Any, name: str, reader: Callable[[_Session], None]) -> None:
        self.connection = connection
        self.channels: dict[bytes, _Channel] = {}
        self.ended = False
        self.pinged = False  # a keepalive PING is waiting for its reply
        self.pid = os.getpid()
        self.thread = threading.Thread(target=reader, args=(self,), name=name, daemon=True)


class _Listener:
    """Every wait of one backend shares one subscription connection.

    A waiter subscribes, then the reader thread's SUBSCRIBE confirmation wakes it to GET
    (closing the race with a result stored before the subscription), then a message wakes
    it. Only the reader thread reads the socket; writers hold the lock, so replies and
    counters stay in step. A failed connection ends the session: its waiters re-subscribe.
    """

    def __init__(self, connect: Callable[[float], Any], name: str, keepalive: float = KEEPALIVE):
        self._connect = connect  # a new connection of its own, connected, with this timeout
        self._name = name
        self._keepalive = keepalive
        self._lock = threading.Lock()
        self._session: _Session | None = None

    def join(self, channel: bytes) -> _Waiter:
        with self._lock:
            if self._session is not None and self._session.pid != os.getpid():
                self._session = None  # forked: the parent's socket and thread are not ours
            session = self._session or self._open()
            chan = session.channels.setdefault(channel, _Channel())
            if not chan.waiters:  # the first waiter subscribes; later ones share it
                try:
                    session.connection.send_command("SUBSCRIBE", channel, check_health=False)
                except BaseException:
                    self._end(session, "lost")
                    raise
                chan.sent += 1
            waiter = _Waiter(session, channel, chan.sent)
            chan.waiters.append(waiter)
            if chan.acked >= waiter.ticket:
                waiter.wake.set()
            return waiter

    def leave(self, waiter: _Waiter) -> None:
        with self._lock:
            session, chan = waiter.session, waiter.session.channels.get(waiter.channel)
            if chan is None or waiter not in chan.waiters:
                return
            chan.waiters.remove(waiter)
            if chan.waiters:
                return
            if chan.acked >= chan.sent:
                del session.channels[waiter.channel]
            try:
                session.connection.send_command("UNSUBSCRIBE", waiter.channel, check_health=False)
            except (redis.exceptions.RedisError, OSError):
                self._end(session, "lost")

    def close(self) -> None:
        with self._lock:
            session = self._session
            if session is None:
                return
            self._end(session, "closed")
        # Cutting the socket wakes the reader blocked on it; it then exits.
        session.connection.disconnect()
        session.thread.join(_CLOSE_GRACE)
        if session.thread.is_alive():
            logger.warning("result listener thread %s did not stop", session.thread.name)

    def _open(self) -> _Session:
        # A dedicated connection, not one borrowed from the pool: it is in subscribe mode
        # for its whole life and only this listener may ever read from it. Reads time out
        # so the reader can PING: a network that drops silently (no reset) is then noticed
        # within two intervals instead of never.
        connection = self._connect(self._keepalive)
        session = _Session(connection, self._name, self._read)
        session.thread.start()
        self._session = session
        return session

    def _end(self, session: _Session, why: str) -> None:
        """Retire ``session`` (lock held): wake its waiters with the reason."""
        session.ended = True
        if self._session is session:
            self._session = None
        for chan in session.channels.values():
            for waiter in chan.waiters:
                waiter.ended = why
                waiter.wake.set()
        session.channels.clear()

    def _read(self, session: _Session) -> None:
        connection = session.connection
        try:
            while not session.ended:
                try:
                    reply = connection.read_response(disconnect_on_error=False, push_request=True)
                except redis.exceptions.TimeoutError:
                    if session.pinged:  # no answer to the last PING: the link is dead
                        raise
                    session.pinged = True
                    with self._lock:
                        connection.send_command("PING", check_health=False)
                    continue
                with self._lock:
                    self._dispatch(session, reply)
        except Exception as exc:  # any failure ends the session; waiters re-subscribe
            with self._lock:
                if not session.ended:
                    logger.warning("lost the result notification connection: %s", exc)
                    self._end(session, "lost")
        finally:
            connection.disconnect()

    @staticmethod
    def _dispatch(session: _Session, reply: Any) -> None:
        session.pinged = False  # any reply proves the connection alive
        if session.ended or not isinstance(reply, list) or len(reply) != 3:
            return
        kind, channel, data = reply
        chan = session.channels.get(channel)
        if chan is None:
            return
        if kind == b"subscribe":
            chan.acked += 1
            for waiter in chan.waiters:
                if waiter.ticket <= chan.acked:
                    waiter.wake.set()
            if not chan.waiters and chan.acked >= chan.sent:
                del session.channels[channel]
        elif kind == b"message":
            for waiter in chan.waiters:
                waiter.value = data or None
                waiter.wake.set()


class RedisBackend(ResultBackend):
    """Results in Redis: one hash per record, a set per chord, pubsub to wake waiters."""

    schemes = ("redis", "rediss", "unix", "sentinel", *CLUSTER_SCHEMES)
    supports_failure_expires = True
    supports_chord_expires = True

    def __init__(
        self,
        url: str,
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        key_prefix: str = "celeriac",
        transport_options: Mapping[str, Any] | None = None,
        record_format: RecordFormat | None = None,
    ) -> None:
        super().__init__(
            expires=expires,
            serializer=serializer,
            accept_content=accept_content,
            record_format=record_format,
        )
        self.url = url
        self.key_prefix = key_prefix
        check_options(
            transport_options or {}, (self.records.prefix_option, "listener_keepalive"),
            "result_backend_transport_options",
        )  # fmt: skip
        self._target = parse_target(url, transport_options)
        if self._target.decodes_responses:  # records are bytes (msgpack too)
            raise ImproperlyConfigured(
                f"remove decode_responses from the result backend URL {redact(url)}"
            )
        keepalive = float((transport_options or {}).get("listener_keepalive", KEEPALIVE))
        # Made on first use (a cluster client connects), once for every thread.
        self._clients = ScriptedClients(
            self._target, list(_SCRIPTS), _SCRIPTS.__getitem__, connecting=self._errors
        )
        self._listener = _Listener(
            lambda timeout: self._target.subscriber(self._client, timeout),
            f"celeriac-results-{key_prefix}",
            keepalive,
        )

    @property
    def _client(self) -> redis.Redis:
        return self._clients.sync

    def _script(self, name: str) -> Any:
        return self._clients.sync_scripts[name]

    def __repr__(self) -> str:
        return f"<RedisBackend {redact(self.url)} prefix={self.key_prefix!r}>"

    def _key(self, key: str) -> str:
        return self.records.stored_key(self.key_prefix, key)

    def _channel(self, key: str) -> bytes:
        return self.records.channel(self.key_prefix, key).encode()

    def _ready(self, value: bytes) -> bool:
        """Whether a record read or announced is final: the hash layout announces only
        those; a plain value is announced at every write, so its state says."""
        return not self.records.plain_values or self.record_ready(value)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn redis-py's connection failures into one error naming the URL and the fix."""
        try:
            yield
        except BackendConnectionError:  # (an OSError: said once, by an inner call)
            raise
        except redis.exceptions.RedisClusterException as exc:
            if isinstance(exc, UNAVAILABLE):  # no node answered
                raise self._unreachable(exc) from exc
            problem = cluster_problem(exc, self.url)
            if problem is None:
                raise
            raise ImproperlyConfigured(problem) from exc
        except UNAVAILABLE as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: BaseException) -> BackendConnectionError:
        handshake = tls.refused_handshake(
            exc, what="Redis result backend", url=redact(self.url),
            setting="redis_backend_use_ssl", prefix="ssl_",
        )  # fmt: skip
        if handshake is not None:
            return BackendConnectionError(f"{handshake}.")
        return BackendConnectionError(
            f"cannot reach the Redis result backend at {redact(self.url)}: "
            f"{reason(exc)}. Check that Redis is running and reachable there, and that "
            f"result_backend names the right host, port, database and password."
            + self._target.tls_hint(exc, "redis_backend_use_ssl")
        )

    # -- engine I/O ---------------------------------------------------------------------------
    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        if self.records.plain_values:  # Celery's layout: announced with the record, always
            # No MULTI: a cluster refuses PUBLISH inside a transaction.
            pipe = self._client.pipeline(transaction=False)
            pipe.set(self._key(key), value, px=None if ttl is None else _ms(ttl))
            pipe.publish(self._channel(key), value)
            with self._errors():
                pipe.execute()
            return
        # One script, one round trip: the record, its TTL and the wake-up land together.
        message = value if ready and len(value) <= _INLINE_LIMIT else b""
        with self._errors():
            self._script("store")(
                keys=[self._key(key)],
                args=[value, int(ready), 0 if ttl is None else _ms(ttl), self._channel(key),
                      message],
            )  # fmt: skip

    def _get(self, key: str) -> bytes | None:
        with self._errors():
            if self.records.plain_values:
                return cast("bytes | None", self._client.get(self._key(key)))
            return cast("bytes | None", self._client.hget(self._key(key), "value"))

    def _get_ready(self, key: str) -> bytes | None:
        if self.records.plain_values:
            record = self._get(key)
            return record if record is not None and self._ready(record) else None
        with self._errors():
            value, ready = self._client.hmget(self._key(key), ["value", "ready"])
        return cast("bytes | None", value) if ready == b"1" else None

    def _delete(self, key: str) -> None:
        with self._errors():
            self._client.delete(self._key(key))

    def _get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        plain = self.records.plain_values
        with self._errors():  # one GET a key: a cluster spreads them over its slots
            pipe = self._client.pipeline(transaction=False)
            for key in keys:
                if plain:
                    pipe.get(self._key(key))
                else:
                    pipe.hget(self._key(key), "value")
            return cast("list[bytes | None]", pipe.execute())

    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        name = self._key(key)
        keys = [name, beside(name, ":owner"), beside(name, ":grown")]  # one slot
        with self._errors():
            done = self._script("join")(keys, [member, size, 0 if ttl is None else _ms(ttl)])
        return bool(done)

    def _grow(self, key: str, by: int, ttl: float | None) -> None:
        name = beside(self._key(key), ":grown")
        with self._errors():
            pipe = self._client.pipeline(transaction=True)
            pipe.incrby(name, by)
            if ttl is not None:
                pipe.pexpire(name, _ms(ttl))
            pipe.execute()

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        # Already ready: one round trip, no subscription.
        raw = self._get_ready(key)
        if raw is not None or (timeout is not None and timeout <= 0):
            return raw
        deadline = None if timeout is None else time.monotonic() + timeout
        channel = self._channel(key)
        with self._errors():
            waiter = self._listener.join(channel)
        try:
            while True:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if not waiter.wake.wait(remaining):
                    return None
                waiter.wake.clear()  # before reading the state below, so no wake-up is lost
                if waiter.ended == "closed":
                    raise BackendConnectionError(
                        f"the result backend {redact(self.url)} was closed while waiting "
                        f"for {key}; close the app only after its results were collected"
                    )
                if waiter.ended == "lost":  # subscribe again on a fresh connection
                    with self._errors():
                        waiter = self._listener.join(channel)
                    continue
                if waiter.value is not None and self._ready(waiter.value):
                    return waiter.value
                # Subscribed (or told a large value is ready): read the record itself.
                raw = self._get_ready(key)
                if raw is not None:
                    return raw
        finally:
            self._listener.leave(waiter)

    def close(self) -> None:
        """Stop the listener thread and close every connection (reopened on next use)."""
        self._listener.close()
        self._clients.close()
