"""Connecting to Redis from a URL: shared by the Redis broker and the Redis result backend.

Seam-level helper (imports redis-py and leaves only), so the two engines need not import
each other. Forms: ``redis://[user:pass@]host[:port][/db]``, ``rediss://`` (TLS),
``unix:///path/redis.sock[?db=N]``, ``sentinel://host:port[;sentinel://host:port...][/db]``
with ``master_name`` in the transport options, and ``redis+cluster://[user:pass@]host:port
[,host:port...][/]`` (``rediss+cluster://`` with TLS) for a Redis Cluster.

A cluster differs from one server in two places only, both here: how the client is made
(redis-py's ``RedisCluster``, which follows MOVED/ASK and failovers), and which keys one
command may take together (``RedisTarget.slot_groups``; ``beside`` names a key in the
slot of another). Subscriptions connect to any one node (``subscriber``): a PUBLISH on a
cluster reaches every node.
"""

from __future__ import annotations

import random
import re
import ssl
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.client
import redis.asyncio.cluster
import redis.asyncio.sentinel
import redis.cluster
import redis.sentinel
from redis.crc import key_slot

from celeriac.config import tls
from celeriac.config.hints import warn_unknown
from celeriac.exceptions import ImproperlyConfigured

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SCHEMES = ("redis", "rediss", "unix", "sentinel", *CLUSTER_SCHEMES)
_TLS_SCHEMES = ("rediss", "rediss+cluster")
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
#: The server (or the cluster) cannot serve now: down, failing over, still loading.
#: Retrying can help; ``RedisClusterUnreachableError``: no node of the URL answered.
UNAVAILABLE: tuple[type[Exception], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    redis.exceptions.ClusterError,  # CLUSTERDOWN, and redirections that did not settle
    redis.exceptions.TryAgainError,  # a slot in migration
    redis.exceptions.SlotNotCoveredError,
    redis.exceptions.RedisClusterUnreachableError,
)


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
    nodes: tuple[tuple[str, int], ...] = ()  # a cluster's startup nodes (empty otherwise)

    def tls_hint(self, exc: BaseException, setting: str) -> str:
        """The likely fix when a TLS server cut the connection of this client, which has
        no certificate of its own; "" otherwise."""
        if not self.url.lower().startswith("rediss") or dict(self.options).get("ssl_certfile"):
            return ""
        return tls.client_certificate_hint(exc, setting=setting, prefix="ssl_")

    @property
    def decodes_responses(self) -> bool:
        """The URL asks redis-py to decode replies to text (``?decode_responses=true``)."""
        query = dict(parse_qsl(urlsplit(self.url).query))
        value = query.get("decode_responses")
        return value is not None and value.strip().upper() not in ("", "0", "F", "FALSE", "N", "NO")

    def _cluster_options(self, asynchronous: bool) -> dict[str, Any]:
        options = {
            **dict(self.options),
            "ssl": self.url.lower().startswith("rediss+"),
            "username": self.username,
            "password": self.password,
        }
        if asynchronous:  # the asyncio RedisCluster retries timeouts through its own policy
            options.pop("retry_on_timeout", None)
        return options

    def sync_client(self) -> redis.Redis:
        """A client for the master; with Sentinel, closing it also closes the sentinels.

        For a cluster, redis-py's ``RedisCluster``, which reads the cluster's layout from
        the first node that answers (so it connects now)."""
        if self.nodes:
            cluster = redis.cluster.RedisCluster(
                startup_nodes=[
                    redis.cluster.ClusterNode(h, p)  # type: ignore[no-untyped-call, unused-ignore]
                    for h, p in self.nodes
                ],
                **self._cluster_options(asynchronous=False),
            )
            return cluster  # type: ignore[return-value]  # the same commands as Redis
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
        """An asyncio client for the master; ``aclose()`` also closes the sentinels.
        For a cluster, redis-py's asyncio ``RedisCluster`` (it connects on first use)."""
        if self.nodes:
            cluster = redis.asyncio.cluster.RedisCluster(
                startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in self.nodes],
                **self._cluster_options(asynchronous=True),
            )
            return cluster  # type: ignore[return-value]  # the same commands as Redis
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

    def slot_groups(self, keys: Iterable[str]) -> list[list[str]]:
        """``keys`` split into the groups one multi-key command (an ``XREAD`` over several
        streams) may take together: one group on a single server, one per hash slot on a
        cluster. Order is kept within and across groups."""
        keys = list(keys)
        if not self.nodes:
            return [keys]
        groups: dict[int, list[str]] = {}
        for key in keys:
            groups.setdefault(key_slot(key.encode()), []).append(key)
        return list(groups.values())

    def servers(self, client: Any) -> list[tuple[str, redis.Redis]]:
        """Each server that holds data, as (name, client): the one server, or every
        master of a cluster (for checks of server settings)."""
        if not self.nodes:
            return [("", client)]
        return [(node.name, client.get_redis_connection(node)) for node in client.get_primaries()]

    def subscriber(self, client: Any, socket_timeout: float) -> Any:
        """A new connection, outside any pool, for a subscription, connected now: to the
        server, or to the first node of a cluster that answers (a PUBLISH reaches every
        node, so any one will do; after a failover, another live one)."""
        if not self.nodes:
            return _connect(client.connection_pool, socket_timeout)
        nodes = list(client.get_nodes())
        random.shuffle(nodes)  # spread subscribers over the nodes
        error: Exception | None = None
        for node in nodes:
            try:
                return _connect(client.get_redis_connection(node).connection_pool, socket_timeout)
            except UNAVAILABLE as exc:
                error = exc
        raise error or redis.ConnectionError("the cluster has no node to subscribe on")

    async def async_pubsub(self, client: Any) -> redis.asyncio.client.PubSub:
        """A pub/sub object, connected now: on the client's own pool for one server, on a
        pool of its own to the first node of a cluster that answers."""
        if not self.nodes:
            pubsub: redis.asyncio.client.PubSub = client.pubsub()
            await pubsub.connect()  # type: ignore[no-untyped-call, unused-ignore]
            return pubsub
        await client.initialize()
        nodes = list(client.get_nodes())
        random.shuffle(nodes)
        error: Exception | None = None
        for node in nodes:
            pool = redis.asyncio.ConnectionPool(
                connection_class=node.connection_class, **node.connection_kwargs
            )
            pubsub = redis.asyncio.client.PubSub(connection_pool=pool)
            try:
                await pubsub.connect()  # type: ignore[no-untyped-call, unused-ignore]
                return pubsub
            except UNAVAILABLE as exc:
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                error = exc
        raise error or redis.ConnectionError("the cluster has no node to subscribe on")

    def _auth(self) -> dict[str, Any]:
        """The URL's credentials are the master's; the sentinels' come from the
        ``sentinel_kwargs`` transport option (often none: sentinels without a password)."""
        return {
            "sentinel_kwargs": dict(self.sentinel_options),
            "password": self.password,
            "username": self.username,
        }


def _connect(pool: Any, socket_timeout: float) -> Any:
    connection = pool.connection_class(**pool.connection_kwargs)
    connection.socket_timeout = socket_timeout
    connection.connect()
    return connection


def beside(key: str, suffix: str) -> str:
    """A key named after ``key`` that lies in ``key``'s cluster slot: a script may then
    touch both. Redis hashes a key's first ``{tag}`` (non-empty) when it has one, else
    the whole name, so ``{key}suffix`` hashes like ``key`` unless ``key`` has a tag of
    its own, in which case ``key + suffix`` keeps that tag."""
    start = key.find("{")
    end = key.find("}", start + 1) if start >= 0 else -1
    if end > start + 1 or "}" in key:  # tagged already (or the braces could not nest)
        return key + suffix
    return f"{{{key}}}{suffix}"


def cluster_problem(exc: BaseException, url: str) -> str | None:
    """The fix, when a cluster client was pointed at a server that is not in a cluster."""
    if isinstance(exc, redis.exceptions.RedisClusterException) and "not enabled" in str(exc):
        return (
            f"{redact(url)} is a redis+cluster:// URL, but the server there is not in cluster "
            f"mode ({reason(exc)}). Use redis://host:port/db for a single server, or list "
            f"the nodes of your cluster."
        )
    return None


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
            f"{redact(url)!r} is not a Redis URL: use redis://, rediss://, unix://, "
            f"sentinel:// or redis+cluster://"
        )
    url, options = _tls_options(url, scheme, options)
    given = {k: options[k] for k in _CLIENT_OPTIONS if k in options}
    client_options = tuple(sorted({**DEFAULT_TIMEOUTS, **given}.items()))
    if scheme == "unix":  # TCP keepalive means nothing on a socket file (redis-py refuses it)
        client_options = tuple(item for item in client_options if item[0] not in _TCP_ONLY)
    if scheme in CLUSTER_SCHEMES:
        return _cluster_target(url, options, client_options)
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


def _cluster_target(
    url: str, options: Mapping[str, Any], client_options: tuple[tuple[str, Any], ...]
) -> RedisTarget:
    """``redis+cluster://[user:pass@]host:port[,host:port...][/[0]]``: the startup nodes
    (any one that answers is enough; listing several survives one being down)."""
    parts = urlsplit(url)
    login, _, hosts = parts.netloc.rpartition("@")
    username, _, password = login.partition(":")
    nodes: list[tuple[str, int]] = []
    for host in hosts.split(","):
        name, port = _host_port(host.strip(), url)
        nodes.append((name, port))
    if parts.path.strip("/") not in ("", "0"):
        raise ImproperlyConfigured(
            f"{redact(url)} names database {parts.path.strip('/')!r}, but a Redis Cluster has "
            f"database 0 only: end the URL with / (or /0), and separate apps with key_prefix"
        )
    if parts.query:
        raise ImproperlyConfigured(
            f"{redact(url)} has query options ({parts.query.split('=')[0]}=...), which a "
            f"redis+cluster:// URL does not read: give client options in the transport options"
        )
    client_options = tuple(item for item in client_options if item[0] not in _CREDENTIALS)
    return RedisTarget(
        url=url,
        nodes=tuple(nodes),
        password=unquote(password) if password else options.get("password"),
        username=unquote(username) if username else options.get("username"),
        options=client_options,
    )


def _host_port(text: str, url: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` (the port defaults to 6379)."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ImproperlyConfigured(
            f"{redact(url)} lists a node without a host ({text!r}): write host:port,host:port"
        )
    try:
        return host, int(port or 6379)
    except ValueError:
        raise ImproperlyConfigured(
            f"{redact(url)} lists a node whose port is not a number ({text!r})"
        ) from None


def _tls_options(url: str, scheme: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The URL without its ``ssl_*`` query parameters, and the options with them (the URL
    wins, as in Celery), the certificate requirement checked: verified unless told not."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    from_url: dict[str, Any] = {k: v for k, v in query if k in _SSL_OPTIONS}
    tls_options = sorted({*from_url, *(k for k in _SSL_OPTIONS if k in options)})
    if tls_options and scheme not in _TLS_SCHEMES:
        fix = "rediss+cluster://" if scheme == "redis+cluster" else "a rediss:// URL"
        raise ImproperlyConfigured(
            f"{', '.join(tls_options)} only apply to TLS connections: use {fix} "
            f"instead of {scheme}:// (TLS through Sentinel is not supported yet)"
        )
    if scheme not in _TLS_SCHEMES:
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
