"""Building engines from URLs: the one place that maps a URL scheme to an engine class.

Settings are turned into constructor arguments here, so engines never read ``app.conf``.
A scheme without an engine fails here in one line naming the schemes there are (never
the URL: it may hold a password). With neither URL set, results join the embedded Redis.
"""

from __future__ import annotations

import datetime as dt
import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from celeriac.brokers.base import MAX_PRIORITY, Broker
from celeriac.config.hints import UnknownSettingWarning
from celeriac.exceptions import ImproperlyConfigured
from celeriac.messages.wire import NATIVE, WireFormat
from celeriac.results.base import (
    MEMORY_SCHEMES,
    NATIVE_RECORDS,
    DisabledBackend,
    RecordFormat,
    ResultBackend,
)

if TYPE_CHECKING:
    from celeriac.brokers.embedded import EmbeddedServer

_REDIS = ("redis", "rediss", "unix", "sentinel", "redis+cluster", "rediss+cluster")
# kombu's Redis layout, to share queues with Celery workers (docs/brokers/kombu-redis.md).
_KOMBU_REDIS = tuple(f"kombu+{scheme}" for scheme in ("redis", "rediss", "unix", "sentinel"))
KOMBU_VISIBILITY_TIMEOUT = 3600.0  # kombu's default: Celery workers restore after this
_AMQP = ("amqp", "amqps", "pyamqp")
_SENTINEL = ("sentinel", "kombu+sentinel")  # sentinel://s1:26379;sentinel://s2:26379
# Celery 4's amqp result backend (removed in Celery 5): answered by name, with rpc:// as the fix.
_OLD_AMQP_BACKEND = {"amqp", "amqps", "pyamqp"}
_BROKERS = (
    "redis://, rediss://, unix://, sentinel://, redis+cluster:// (Redis), kombu+redis://, "
    "kombu+rediss:// (Redis, queues shared with Celery workers), amqp://, amqps:// "
    "(RabbitMQ) or memory:// (one process)"
)
_BACKENDS = (
    "redis://, rediss://, unix://, sentinel://, redis+cluster:// (Redis), rpc:// (back to the "
    "caller, through the broker), db+<SQLAlchemy URL> (a SQL database), "
    "cache+memcached://host:port/ (memcached) or cache+memory:// (one process)"
)
# Celery's database result store: 'db+<SQLAlchemy URL>', or 'database' with database_url.
_DATABASE = ("db", "database")
DATABASE_SETTINGS = (
    "database_url", "database_engine_options", "database_engine_callback",
    "database_short_lived_sessions", "database_table_schemas", "database_table_names",
    "database_create_tables_at_setup",
)  # fmt: skip
# Celery's cache store: 'cache+memcached://h1:11211;h2:11211/', or 'cache' with cache_backend.
# Celery's other client names reach the same client (pymemcache).
_MEMCACHED = ("memcached", "memcache", "pymemcache", "pylibmc")
EMBEDDED_RESULTS_DB = 1  # the embedded server's database for results; its broker uses 0
# The wire_format setting's values: how messages and result records are framed.
WIRE_FORMAT_NAMES = ("celeriac", "celery")


def _scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def _named(scheme: str) -> str:
    return f"scheme {scheme!r}" if scheme else "no scheme (write a URL, e.g. 'redis://host')"


def wire_formats(name: Any) -> tuple[WireFormat, RecordFormat]:
    """The message and result-record formats the ``wire_format`` setting names."""
    if name == "celeriac":
        return NATIVE, NATIVE_RECORDS
    if name == "celery":  # Celery's format is loaded only by the apps that speak it
        from celeriac.messages.celery.wire_format import CELERY
        from celeriac.results.celery_records import CELERY_RECORDS

        return CELERY, CELERY_RECORDS
    choices = ", ".join(repr(choice) for choice in sorted(WIRE_FORMAT_NAMES))
    raise ImproperlyConfigured(
        f"wire_format is {name!r}, which is not a wire format celeriac has: set it to "
        f"one of {choices}, or leave it unset"
    )


def create_broker(
    url: str | None,
    transport_options: Mapping[str, Any],
    delivery_limit: int,
    use_ssl: bool | Mapping[str, Any] | None = None,
    heartbeat: float | None = None,
    connect_timeout: float | None = None,
    wire_format: WireFormat | None = None,
    max_priority: int | None = MAX_PRIORITY,
    amqp: Mapping[str, Any] | None = None,
) -> Broker:
    """The broker ``url`` names; ``max_priority``: RabbitMQ's classic queues' levels;
    ``amqp``: more of the RabbitMQ broker's arguments (``engine_options.amqp_settings``)."""
    if url is None:  # no broker configured: the project's embedded Redis, else memory://
        from celeriac.brokers import embedded

        if embedded.available():
            url = embedded.embedded_broker_url()
        else:
            embedded.warn_memory_fallback()
    scheme = _scheme(url or "memory://")
    if url is not None and ";" in url and scheme not in (*_AMQP, *_SENTINEL):
        raise ImproperlyConfigured(
            f"broker_url lists several brokers (';'), a failover list only RabbitMQ URLs "
            f"(amqp://a//;amqp://b//) and Redis Sentinel's take; for {scheme}:// give one "
            f"URL: several Redis servers are reached through sentinel:// or redis+cluster://"
        )
    if scheme in _KOMBU_REDIS:
        return _kombu_redis_broker(
            str(url), transport_options, delivery_limit, use_ssl, wire_format
        )
    lease = float(transport_options.get("visibility_timeout", 30.0))
    if scheme == "memory":
        from celeriac.brokers.memory import MemoryBroker  # (loaded only when used)

        return MemoryBroker(
            lease_seconds=lease, delivery_limit=delivery_limit, wire_format=wire_format
        )
    if scheme in _REDIS:
        try:  # redis-py comes with the optional extra celeriac[redis]
            from celeriac.brokers.redis import RedisBroker
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                f"broker {scheme}:// needs redis-py: pip install 'celeriac[redis]'"
            ) from exc
        options = _redis_tls(str(url), scheme, transport_options, use_ssl)
        return RedisBroker(
            str(url),
            lease_seconds=lease,
            delivery_limit=delivery_limit,
            transport_options=options,
            wire_format=wire_format,
        )
    if scheme in _AMQP:
        try:  # aiormq comes with the optional extra celeriac[amqp]
            from celeriac.brokers.amqp import AmqpBroker
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                f"broker {scheme}:// needs the AMQP client: pip install 'celeriac[amqp]'"
            ) from exc
        amqp_args = dict(amqp or {})
        shared = amqp_args.pop("shared_queues", None)
        if shared is not None:  # wire_format = "celery": the queues as Celery declares them
            amqp_args["shared_queues"] = shared_queues(shared)
        amqp_options = dict(transport_options)  # the settings, unless the options say
        if heartbeat is not None:
            amqp_options.setdefault("heartbeat", heartbeat)
        if connect_timeout is not None:
            amqp_options.setdefault("connect_timeout", connect_timeout)
        return AmqpBroker(
            str(url),
            lease_seconds=lease,
            delivery_limit=delivery_limit,
            transport_options=amqp_options,
            use_ssl=use_ssl,
            wire_format=wire_format,
            max_priority=max_priority,
            **amqp_args,
        )
    raise ImproperlyConfigured(
        f"broker_url has {_named(scheme)}, which no celeriac broker serves: set broker_url "
        f"to {_BROKERS}, e.g. 'redis://localhost:6379/0'"
    )


def _redis_tls(
    url: str, scheme: str, transport_options: Mapping[str, Any], use_ssl: Any
) -> dict[str, Any]:
    """The Redis broker's options with ``broker_use_ssl`` (Celery's ssl_* keys) merged in;
    refused with the fix when the URL is not TLS."""
    if use_ssl and "rediss" not in scheme.split("+"):
        from celeriac._redis import redact

        raise ImproperlyConfigured(
            f"broker_use_ssl is set but the broker URL {redact(url)!r} is not TLS: "
            f"use {'kombu+' if scheme.startswith('kombu+') else ''}rediss:// (TLS through "
            f"Sentinel is not supported yet)"
        )
    if isinstance(use_ssl, Mapping):
        return {**use_ssl, **transport_options}
    return dict(transport_options)


def _kombu_redis_broker(
    url: str,
    transport_options: Mapping[str, Any],
    delivery_limit: int,
    use_ssl: Any,
    wire_format: WireFormat | None,
) -> Broker:
    """kombu's Redis layout; celeriac's own shared state (revocations, idempotency keys,
    token buckets, leases, topics) on the Redis Streams engine of the same server, its keys
    under ``<global_keyprefix>_celeriac``. The lease is kombu's visibility timeout."""
    try:  # redis-py comes with the optional extra celeriac[redis]
        from celeriac._redis import CONNECTION_OPTIONS
        from celeriac.brokers.kombu_redis import KombuRedisBroker
        from celeriac.brokers.kombu_redis.broker import redis_url
        from celeriac.brokers.kombu_redis.keys import Layout
        from celeriac.brokers.redis import RedisBroker
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            f"broker {_scheme(url)}:// needs redis-py: pip install 'celeriac[redis]'"
        ) from exc
    options = _redis_tls(url, _scheme(url), transport_options, use_ssl)
    lease = float(options.get("visibility_timeout", KOMBU_VISIBILITY_TIMEOUT))
    own = Layout(prefix=str(options.get("global_keyprefix", ""))).own
    kept = {k: v for k, v in options.items() if k in CONNECTION_OPTIONS or k == "eviction_policy"}
    shared = RedisBroker(
        redis_url(url),
        lease_seconds=lease,
        delivery_limit=delivery_limit,
        transport_options={**kept, "key_prefix": own},
        wire_format=wire_format,
    )
    return KombuRedisBroker(
        url,
        shared=shared,
        lease_seconds=lease,
        delivery_limit=delivery_limit,
        transport_options=options,
        wire_format=wire_format,
    )


def shared_queues(spec: Mapping[str, Any]) -> Any:
    """The RabbitMQ broker's ``SharedQueues`` from ``engine_options.celery_queues``' plain
    description (built here, where the engine may be imported)."""
    from celeriac.brokers.amqp.topology import Binding, SharedQueues

    bindings = {name: Binding(**binding) for name, binding in spec["bindings"].items()}
    return SharedQueues(bindings, dict(spec["missing_arguments"]))


def expires_seconds(value: dt.timedelta | float | None) -> float | None:
    """``result_expires`` in seconds; None or 0 keeps results forever, as in Celery."""
    seconds = value.total_seconds() if isinstance(value, dt.timedelta) else value
    return float(seconds) if seconds else None


def create_backend(
    url: str | None,
    expires: dt.timedelta | float | None,
    serializer: str,
    accept_content: Sequence[str],
    transport_options: Mapping[str, Any] | None = None,
    record_format: RecordFormat | None = None,
    database: Mapping[str, Any] | None = None,
    broker: Callable[[], Broker] | None = None,
    cache: Mapping[str, Any] | None = None,
) -> ResultBackend:
    """The result store ``url`` names; ``broker`` gives the app's broker, which rpc://
    sends results through (built only when the store first needs it); ``cache`` has the
    ``cache_backend`` settings (``cache_settings``)."""
    if url is None:
        return DisabledBackend()
    scheme = _scheme(url)
    options: dict[str, Any] = {
        "expires": expires_seconds(expires),
        "serializer": serializer,
        "accept_content": accept_content,
        "record_format": record_format,
    }
    if scheme in MEMORY_SCHEMES:
        return _memory_backend(options)
    if scheme.partition("+")[0] in _DATABASE or url in _DATABASE:
        if transport_options:  # Celery's database store reads none either
            _warn_unread(
                transport_options,
                "the database result store: its options are the database_* settings "
                "(database_engine_options for SQLAlchemy's create_engine)",
            )
        return _database_backend(url, database or {}, options)
    if scheme.partition("+")[0] == "cache" or url == "cache":
        if transport_options:  # Celery's cache store reads none either
            _warn_unread(
                transport_options,
                "the memcached result store: its client's options are cache_backend_options",
            )
        return _cache_backend(url, cache or {}, options)
    if scheme in _REDIS:  # RedisBackend.schemes, without importing redis-py first
        transport_options = dict(transport_options or {})
        try:  # redis-py is the optional extra celeriac[redis]
            from celeriac.results.redis import RedisBackend
        except ModuleNotFoundError as exc:
            raise ImproperlyConfigured(
                f"result_backend {scheme}:// needs redis-py: pip install 'celeriac[redis]'"
            ) from exc
        records = record_format or NATIVE_RECORDS  # its prefix option: Celery's or ours
        prefix = str(transport_options.get(records.prefix_option, records.default_prefix))
        return RedisBackend(url, key_prefix=prefix, transport_options=transport_options, **options)
    if scheme == "rpc":
        return _rpc_backend(url, broker, options)
    if scheme in _OLD_AMQP_BACKEND:
        raise ImproperlyConfigured(
            f"result_backend has scheme {scheme!r}: the amqp result backend was removed in "
            f"Celery 5 and celeriac does not offer it; set result_backend='rpc://' (results "
            f"sent back to the caller through the broker), or store them in Redis, e.g. "
            f"result_backend='redis://localhost:6379/1'. Result backends: {_BACKENDS}"
        )
    raise ImproperlyConfigured(
        f"result_backend has {_named(scheme)}, which no celeriac result backend serves: set "
        f"result_backend to {_BACKENDS}, e.g. 'redis://localhost:6379/1'"
    )


def _warn_unread(transport_options: Mapping[str, Any], store: str) -> None:
    warnings.warn(
        UnknownSettingWarning(
            f"result_backend_transport_options {sorted(transport_options)} has no effect on {store}"
        ),
        stacklevel=3,
    )


def cache_settings(conf: Any) -> dict[str, Any]:
    """``cache_backend`` and ``cache_backend_options`` (``create_backend``'s ``cache``)."""
    return {"backend": conf.cache_backend, "options": conf.cache_backend_options}


def _cache_backend(url: str, settings: Mapping[str, Any], options: dict[str, Any]) -> ResultBackend:
    """``cache+<kind>://servers/``, or ``cache`` with ``cache_backend`` naming the store."""
    scheme = url.partition("://")[0]
    target = url.split("+", 1)[1] if "+" in scheme else settings.get("backend")
    if not target:
        raise ImproperlyConfigured(
            "result_backend is 'cache', which takes its store from cache_backend, and "
            "cache_backend is not set: set cache_backend='memcached://127.0.0.1:11211/', or "
            "result_backend='cache+memcached://127.0.0.1:11211/'"
        )
    kind, _, servers = str(target).partition("://")
    if kind == "memory":
        return _memory_backend(options)
    if kind not in _MEMCACHED:
        raise ImproperlyConfigured(
            f"the cache result store {kind!r} is unknown: use 'memcached://host:port/' "
            f"(several servers separated by ';') or 'memory'"
        )
    client_options = settings.get("options") or {}
    if not isinstance(client_options, Mapping):
        raise ImproperlyConfigured(
            f"cache_backend_options must be a dict of pymemcache client options, not "
            f"{client_options!r}"
        )
    try:  # pymemcache is the optional extra celeriac[memcached]
        from celeriac.results.memcached import MemcachedBackend
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            "the memcached result store needs pymemcache: pip install 'celeriac[memcached]'"
        ) from exc
    return MemcachedBackend(servers.rstrip("/").split(";"), options=dict(client_options), **options)


def database_settings(conf: Any) -> dict[str, Any]:
    """The ``database_*`` settings, by their names without the prefix (``create_backend``'s
    ``database`` argument)."""
    return {name.removeprefix("database_"): conf[name] for name in DATABASE_SETTINGS}


def _memory_backend(options: dict[str, Any]) -> ResultBackend:
    # Each engine is imported when a URL names it: a worker loads only what it uses.
    from celeriac.results.memory import MemoryBackend

    return MemoryBackend(**options)


def _database_backend(
    url: str, settings: Mapping[str, Any], options: dict[str, Any]
) -> ResultBackend:
    try:  # SQLAlchemy is the optional extra celeriac[sqlalchemy]
        from celeriac.results.database import DEFAULT_ENGINE_OPTIONS, DatabaseBackend
    except ModuleNotFoundError as exc:
        raise ImproperlyConfigured(
            "result_backend 'db+…' needs SQLAlchemy: pip install 'celeriac[sqlalchemy]' "
            "and the database's driver (e.g. psycopg[binary], pymysql)"
        ) from exc
    scheme = url.partition("://")[0]
    target = url.split("+", 1)[1] if "+" in scheme else settings.get("url")
    if not target:
        raise ImproperlyConfigured(
            f"result_backend is {url!r}, which takes its URL from database_url, and "
            f"database_url is not set: set database_url='postgresql://user@host/dbname', "
            f"or result_backend='db+postgresql://user@host/dbname'"
        )
    engine_options = settings.get("engine_options")
    return DatabaseBackend(
        str(target),
        engine_options=DEFAULT_ENGINE_OPTIONS if engine_options is None else engine_options,
        engine_callback=_callable("database_engine_callback", settings.get("engine_callback")),
        short_lived_sessions=bool(settings.get("short_lived_sessions", False)),
        table_names=settings.get("table_names"),
        table_schemas=settings.get("table_schemas"),
        create_tables_at_setup=bool(settings.get("create_tables_at_setup", True)),
        **options,
    )


def _callable(setting: str, value: Any) -> Any:
    """A callable, or one named by an import path (``'pkg.module:name'`` or
    ``'pkg.module.name'``)."""
    if isinstance(value, str):
        module_name, _, name = value.rpartition(":") if ":" in value else value.rpartition(".")
        try:
            value = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(f"{setting} {value!r} cannot be imported: {exc}") from exc
    if value is not None and not callable(value):
        raise ImproperlyConfigured(f"{setting} must be callable, not {value!r}")
    return value


def _rpc_backend(
    url: str, broker: Callable[[], Broker] | None, options: dict[str, Any]
) -> ResultBackend:
    from celeriac.results.rpc import RpcBackend

    parts = urlsplit(url)
    if parts.netloc or parts.path not in ("", "/") or parts.query:
        raise ImproperlyConfigured(
            "result_backend 'rpc://' takes no host, path or options: results travel "
            "through the broker that broker_url names. Set result_backend='rpc://'"
        )
    if broker is None:
        raise ImproperlyConfigured(
            "result_backend 'rpc://' sends results through the app's broker: build it "
            "from an app (Celery(broker=..., backend='rpc://')), or RpcBackend(broker) by hand"
        )
    return RpcBackend(broker, **options)


def embedded_results_url() -> str | None:
    """Where results go when neither a broker nor a result backend is configured: the
    project's embedded Redis (another database than its queues), started if need be.
    None without the embedded extra: the broker is then memory://, and results are off."""
    from celeriac.brokers import embedded

    if not embedded.available():
        return None
    base = embedded.embedded_broker_url().partition("?")[0]  # unix://<socket>?db=0
    return f"{base}?db={EMBEDDED_RESULTS_DB}"


def embedded_server(url: str) -> EmbeddedServer | None:
    """The project's embedded Redis behind a broker ``url``, or None for any other server.
    For the worker's banner: runtimes reach engines only through this module."""
    from celeriac.brokers import embedded

    return embedded.serving(url)
