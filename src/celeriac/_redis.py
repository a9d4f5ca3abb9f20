"""Connecting to Redis from a URL: shared by the Redis broker and the Redis result backend.

Seam-level helper (imports redis-py and leaves only), so the two engines need not import
each other. Forms: ``redis://[user:pass@]host[:port][/db]``, ``rediss://`` (TLS),
``unix:///path/redis.sock[?db=N]``, and ``sentinel://host:port[;sentinel://host:port...][/db]``
with ``master_name`` in the transport options.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel

from celeriac.config import tls
from celeriac.config.hints import warn_unknown
from celeriac.exceptions import ImproperlyConfigured

SCHEMES = ("redis", "rediss", "unix", "sentinel")
# Options a user may pass through transport options to redis-py, as Celery/kombu allow.
_CLIENT_OPTIONS = (
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "retry_on_timeout",
    "max_connections",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "client_name",
    "username",  # used when the URL names none (the redis_username setting)
    "password",  # used when the URL has none (the redis_password setting)
)
_CREDENTIALS = ("username", "password")
_TCP_ONLY = ("socket_keepalive",)
_SSL_OPTIONS = (
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_check_hostname"
)  # fmt: skip
# redis-py waits forever by default: a server that stops answering (paused, a network
# that drops packets) would hang the caller for good. These bound every call unless the
# transport options say otherwise (None there means "wait forever", as in redis-py).
DEFAULT_TIMEOUTS = {"socket_connect_timeout": 5.0, "socket_timeout": 30.0}
# Options every Redis engine reads for the connection itself.
CONNECTION_OPTIONS = frozenset({*_CLIENT_OPTIONS, "master_name", "sentinel_kwargs"})
_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;/]*(@)")


@dataclass(frozen=True)
class RedisTarget:
    """Where and how to connect, parsed once from the URL and options."""

    url: str
    sentinels: tuple[tuple[str, int], ...] = ()
    master_name: str | None = None
    db: int = 0
    password: str | None = None
    username: str | None = None
    options: tuple[tuple[str, Any], ...] = ()
    sentinel_options: tuple[tuple[str, Any], ...] = ()

    def tls_hint(self, exc: BaseException, setting: str) -> str:
        """The likely fix when a TLS server cut the connection of this client, which has
        no certificate of its own; "" otherwise."""
        if not self.url.lower().startswith("rediss:") or dict(self.options).get("ssl_certfile"):
            return ""
        return tls.client_certificate_hint(exc, setting=setting, prefix="ssl_")

    def sync_client(self) -> redis.Redis:
        """A client for the master; with Sentinel, closing it also closes the sentinels."""
        if not self.sentinels:
            client: redis.Redis = redis.Redis.from_url(self.url, **dict(self.options))
            return client
        # redis-py's Sentinel API is untyped before redis 8; the result is a typed client.
        sentinel = redis.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(self.sentinels), **self._auth()
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call, unused-ignore]
            str(self.master_name), db=self.db, **dict(self.options)
        )
        close_master = master.close

        def close() -> None:  # the sentinel connections are not the master's: close both
            close_master()
            for node in sentinel.sentinels:
                node.close()

        master.close = close  # type: ignore[method-assign]
        return master

    def async_client(self) -> redis.asyncio.Redis:
        """An asyncio client for the master; ``aclose()`` also closes the sentinels."""
        if not self.sentinels:
            return redis.asyncio.Redis.from_url(self.url, **dict(self.options))
        sentinel = redis.asyncio.sentinel.Sentinel(  # type: ignore[no-untyped-call, unused-ignore]
            list(self.sentinels), **self._auth()
        )
        master: redis.asyncio.Redis = sentinel.master_for(
            str(self.master_name), db=self.db, **dict(self.options)
        )
        close_master = master.aclose

        async def aclose(close_connection_pool: bool | None = None) -> None:
            await close_master(close_connection_pool)
            for node in sentinel.sentinels:
                await node.aclose()

        master.aclose = aclose  # type: ignore[method-assign]
        return master

    def _auth(self) -> dict[str, Any]:
        """The URL's credentials are the master's; the sentinels' come from the
        ``sentinel_kwargs`` transport option (often none: sentinels without a password)."""
        return {
            "sentinel_kwargs": dict(self.sentinel_options),
            "password": self.password,
            "username": self.username,
        }


def check_options(options: Mapping[str, Any], accepted: Collection[str], setting: str) -> None:
    """Warn about a transport option no Redis engine reads (often a misspelling)."""
    known = sorted({*accepted, *CONNECTION_OPTIONS})
    for key in options:
        if key not in known:
            warn_unknown(
                f"{setting} has an option {key!r} that Redis does not read",
                key,
                known,
                otherwise=f" (known: {', '.join(known)})",
                stacklevel=3,
            )


def parse_target(url: str, transport_options: Mapping[str, Any] | None = None) -> RedisTarget:
    """Parse a Redis URL; name the problem and the fix when it cannot work."""
    options = dict(transport_options or {})
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(
            f"{redact(url)!r} is not a Redis URL: use redis://, rediss://, unix:// or sentinel://"
        )
    url, options = _tls_options(url, scheme, options)
    given = {k: options[k] for k in _CLIENT_OPTIONS if k in options}
    client_options = tuple(sorted({**DEFAULT_TIMEOUTS, **given}.items()))
    if scheme == "unix":  # TCP keepalive means nothing on a socket file (redis-py refuses it)
        client_options = tuple(item for item in client_options if item[0] not in _TCP_ONLY)
    if scheme != "sentinel":  # redis-py: credentials in the URL win over these options
        return RedisTarget(url=url, options=client_options)
    client_options = tuple(item for item in client_options if item[0] not in _CREDENTIALS)
    sentinels: list[tuple[str, int]] = []
    db = 0
    password = username = None
    for part in url.split(";"):
        parsed = urlsplit(part.strip())
        sentinels.append((parsed.hostname or "localhost", parsed.port or 26379))
        if parsed.path.strip("/"):
            db = int(parsed.path.strip("/"))
        # The first part that names credentials gives them (they are the master's).
        password = password or (unquote(parsed.password) if parsed.password else None)
        username = username or (unquote(parsed.username) if parsed.username else None)
    password = password or options.get("password")
    username = username or options.get("username")
    master_name = options.get("master_name")
    if not master_name:
        raise ImproperlyConfigured(
            "a sentinel:// URL needs the master's name: set "
            "broker_transport_options={'master_name': 'mymaster'} (or "
            "result_backend_transport_options for results)"
        )
    return RedisTarget(
        url=url,
        sentinels=tuple(sentinels),
        master_name=str(master_name),
        db=db,
        password=password,
        username=username,
        options=client_options,
        sentinel_options=tuple(sorted(dict(options.get("sentinel_kwargs") or {}).items())),
    )


def _tls_options(url: str, scheme: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL without its ``ssl_*`` query parameters, and the options with them (the URL
    wins, as in Celery), the certificate requirement checked: verified unless told not."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    from_url: dict[str, Any] = {k: v for k, v in query if k in _SSL_OPTIONS}
    tls_options = sorted({*from_url, *(k for k in _SSL_OPTIONS if k in options)})
    if tls_options and scheme != "rediss":
        raise ImproperlyConfigured(
            f"{', '.join(tls_options)} only apply to TLS connections: use a rediss:// URL "
            f"instead of {scheme}:// (TLS through Sentinel is not supported yet)"
        )
    if scheme != "rediss":
        return url, options
    if from_url:
        rest = urlencode([(k, v) for k, v in query if k not in _SSL_OPTIONS])
        url = urlunsplit(parts._replace(query=rest))
    if "ssl_check_hostname" in from_url:
        from_url["ssl_check_hostname"] = from_url["ssl_check_hostname"].lower() != "false"
    options = {**options, **from_url}
    tls.check_files(options, ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"), "the TLS options")
    mode = tls.verify_mode(options.get("ssl_cert_reqs", "required"), "ssl_cert_reqs")
    options["ssl_cert_reqs"] = mode
    if mode != ssl.CERT_NONE:  # redis-py before 6 did not check the host name by default
        options.setdefault("ssl_check_hostname", True)
    tls.warn_if_unverified(mode, f"Redis server at {redact(url)}")
    return url, options


def redact(url: str) -> str:
    """The URL with every password replaced (each part of a sentinel URL), for logs."""
    return _PASSWORD.sub(r"\1**\2", url)


def reason(exc: BaseException) -> str:
    """A driver error's text for the middle of a sentence: redis-py ends its messages with
    a full stop, and ours go on after it."""
    return str(exc).rstrip(". ") or type(exc).__name__


#: Redis answered but refused the credentials: retrying cannot fix these.
REFUSED = (redis.AuthenticationError, redis.exceptions.AuthorizationError)


def refused_message(what: str, url: str, exc: BaseException) -> str:
    """The message for a refused login, naming the fix."""
    return (
        f"the {what} at {redact(url)} refused the login: {reason(exc)}. Put the server's "
        f"password in the URL (redis://:PASSWORD@host:port/db, or redis://USER:PASSWORD@... "
        f"for an ACL user), or check the server's requirepass / ACL settings."
    )
