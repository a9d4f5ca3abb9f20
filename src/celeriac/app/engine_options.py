"""Settings that become engine options: ``task_default_queue_type`` the RabbitMQ broker's
``queue_type`` (``amqp_settings``: its other queue types and login, and with
``wire_format = "celery"`` the queues as Celery declares them), the ``redis_*`` family the
Redis result store's client options, and what every result store is told once built
(``configure_backend``); ``make_backend`` builds ``app.backend`` with them.

App core (imports ``config``, ``exceptions``, ``results.retry`` and
``results.compressed``); ``app.base`` hands the results to ``app.connections``, so engines
still never read ``app.conf``. Transport options, the more specific place, win over these
settings.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from celeriac.app.connections import (
    cache_settings,
    create_backend,
    database_settings,
    embedded_results_url,
    expires_seconds,
    wire_formats,
)
from celeriac.app.routing import declared_queues
from celeriac.app.urls import broker_url, result_url
from celeriac.brokers.base import MAX_PRIORITY
from celeriac.config.conf import NotInEffectWarning
from celeriac.exceptions import ImproperlyConfigured
from celeriac.results.base import ResultBackend
from celeriac.results.cache import ResultCache
from celeriac.results.compressed import check_method
from celeriac.results.retry import StoreRetry

QUEUE_TYPES = ("classic", "quorum")
_AMQP = ("amqp", "amqps", "pyamqp")
_REDIS = ("redis", "rediss", "unix", "sentinel", "redis+cluster", "rediss+cluster")
# redis_* setting -> the client option of the Redis result store it sets (Celery's pairs).
REDIS_RESULT_SETTINGS = {
    "redis_socket_timeout": "socket_timeout",
    "redis_socket_connect_timeout": "socket_connect_timeout",
    "redis_retry_on_timeout": "retry_on_timeout",
    "redis_max_connections": "max_connections",
    "redis_socket_keepalive": "socket_keepalive",
    "redis_backend_health_check_interval": "health_check_interval",
    "redis_client_name": "client_name",
    "redis_username": "username",
    "redis_password": "password",
}
# None means "wait forever" for these, so it is passed on; for the others, "not set".
_NONE_MEANS_FOREVER = ("redis_socket_timeout", "redis_socket_connect_timeout")


def _scheme(url: str | None) -> str:
    return urlsplit(url or "").scheme.lower()


def broker_options(conf: Any, url: str | None) -> dict[str, Any]:
    """``broker_transport_options`` for the broker at ``url``, with ``queue_type`` from
    ``task_default_queue_type`` on RabbitMQ (where every celeriac queue has the one type)."""
    options = dict(conf.broker_transport_options or {})
    queue_type = conf.task_default_queue_type
    if queue_type not in QUEUE_TYPES:
        raise ImproperlyConfigured(
            f"task_default_queue_type must be 'classic' or 'quorum', not {queue_type!r}"
        )
    if _scheme(url) not in _AMQP:
        return options  # queue types are RabbitMQ's; other brokers have one kind of queue
    given = options.get("queue_type")
    if given is None:
        options["queue_type"] = default_queue_type(conf, url)
    elif given != queue_type and queue_type != "classic":
        raise ImproperlyConfigured(
            f"task_default_queue_type is {queue_type!r} but broker_transport_options"
            f"['queue_type'] is {given!r}: set one of them only"
        )
    return options


def default_queue_type(conf: Any, url: str | None) -> str:
    """``task_default_queue_type``; left unset, 'quorum' when the broker URL lists several
    RabbitMQ nodes: a classic queue lives on one node and is out of reach while that node
    is down, a quorum queue is replicated and stays up while most nodes are. Queues shared
    with Celery workers (``wire_format = "celery"``) keep Celery's default, classic."""
    queue_type: str = conf.task_default_queue_type
    if conf.is_set("task_default_queue_type") or conf.wire_format == "celery":
        return queue_type
    nodes = [part for part in (url or "").split(";") if part.strip()]
    return "quorum" if len(nodes) > 1 else queue_type


def amqp_settings(conf: Any) -> dict[str, Any]:
    """The RabbitMQ broker's arguments from the settings: the app's queues (the default
    queue and ``task_queues``), the type of any other queue made on first use
    (``task_create_missing_queue_type``), of the delay queues
    (``broker_native_delayed_delivery_queue_type``), ``broker_login_method`` and
    ``broker_failover_strategy``."""
    missing = conf.task_create_missing_queue_type
    delay = conf.broker_native_delayed_delivery_queue_type
    for name, value in (
        ("task_create_missing_queue_type", missing),
        ("broker_native_delayed_delivery_queue_type", delay),
    ):
        if value is not None and value not in QUEUE_TYPES:
            raise ImproperlyConfigured(
                f"{name} must be 'classic' or 'quorum' (or unset: {_FALLBACK[name]}), not {value!r}"
            )
    known = {str(conf.task_default_queue), *declared_queues(conf.task_queues)}
    settings: dict[str, Any] = {
        "known_queues": frozenset(known),
        "missing_queue_type": missing,
        "delay_queue_type": delay,
        "login_method": conf.broker_login_method,
        "failover_strategy": conf.broker_failover_strategy,
    }
    if conf.wire_format == "celery":  # the queues are Celery's too: declared as it does
        settings["shared_queues"] = celery_queues(conf)
    return settings


def celery_queues(conf: Any) -> dict[str, Any]:
    """The app's queues as Celery 5 declares them, for a broker sharing them with Celery:
    ``{"bindings": {queue: {"exchange", "exchange_type", "routing_key", "arguments"}},
    "missing_arguments": {...}}`` (``brokers.amqp.topology.SharedQueues``).

    As in Celery, with ``task_default_exchange`` and ``task_default_routing_key`` left to
    their defaults (the default queue's name): the default queue (when ``task_queues`` is
    unset) is bound to a direct exchange of its name by its name, quorum when
    ``task_default_queue_type`` says so; a ``task_queues`` entry keeps its exchange,
    exchange type, routing key and ``queue_arguments`` (a kombu ``Queue``, or a mapping of
    options), the default exchange and routing key standing in for those it lacks; a queue
    made on first use gets a direct exchange of its name, quorum when
    ``task_create_missing_queue_type`` says so. ``task_queue_max_priority``, when set,
    adds ``x-max-priority`` to every queue that does not give its own."""
    default = str(conf.task_default_queue)
    max_priority = queue_max_priority(conf)

    def arguments(given: Any, quorum: bool = False) -> dict[str, Any]:
        found = dict(given or {})
        if quorum:
            found.setdefault("x-queue-type", "quorum")
        if max_priority is not None:
            found.setdefault("x-max-priority", max_priority)
        return found

    bindings: dict[str, dict[str, Any]] = {}
    queues = conf.task_queues
    if not queues:
        quorum = conf.task_default_queue_type == "quorum"
        bindings[default] = _binding(default, "direct", default, arguments(None, quorum))
    else:
        items = queues.items() if isinstance(queues, Mapping) else [(None, q) for q in queues]
        for key, item in items:
            name, exchange, kind, routing_key, given = _kombu_queue(key, item)
            bindings[name] = _binding(
                exchange or default,
                kind or "direct",
                routing_key or default,
                arguments(given),
            )
    missing_quorum = conf.task_create_missing_queue_type == "quorum"
    return {"bindings": bindings, "missing_arguments": arguments(None, missing_quorum)}


def _binding(
    exchange: str, kind: str, routing_key: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    return {
        "exchange": exchange,
        "exchange_type": kind,
        "routing_key": routing_key,
        "arguments": arguments,
    }


def _kombu_queue(key: Any, item: Any) -> tuple[str, str | None, str | None, str | None, Any]:
    """(name, exchange, exchange type, routing key, queue arguments) of one ``task_queues``
    entry: a name, a mapping of Celery's queue options (``task_queues={name: {...}}``, or
    a mapping with ``name``), or a kombu ``Queue`` (read by its attributes)."""
    if isinstance(item, str):
        return item, None, None, None, None
    if isinstance(item, Mapping):
        name = str(key if key is not None else item["name"])
        exchange = item.get("exchange")
        kind = item.get("exchange_type")
        # Celery's option form binds by the queue's own name unless told otherwise.
        routing_key = item.get("routing_key") or item.get("binding_key") or name
        given = dict(item.get("queue_arguments") or {})
        if item.get("max_priority") is not None:
            given.setdefault("x-max-priority", item["max_priority"])
    else:
        name = str(key if key is not None else item.name)
        exchange = getattr(item, "exchange", None)
        kind = getattr(exchange, "type", None)
        routing_key = getattr(item, "routing_key", None)
        given = dict(getattr(item, "queue_arguments", None) or {})
        if getattr(item, "max_priority", None) is not None:
            given.setdefault("x-max-priority", item.max_priority)
    if exchange is not None and not isinstance(exchange, str):
        exchange = getattr(exchange, "name", None)
    return name, exchange or None, kind or None, routing_key or None, given


_FALLBACK = {
    "task_create_missing_queue_type": "task_default_queue_type",
    "broker_native_delayed_delivery_queue_type": "quorum on RabbitMQ 3.10+, else classic",
}


def queue_max_priority(conf: Any) -> int | None:
    """``task_queue_max_priority``: the ``x-max-priority`` of RabbitMQ's classic queues
    (9 by default; None or 0, queues without priorities, as in Celery). With
    ``wire_format = "celery"`` the default is Celery's: none."""
    if conf.wire_format == "celery" and not conf.is_set("task_queue_max_priority"):
        return None
    value = conf.task_queue_max_priority
    if not value:
        return None
    if not isinstance(value, int) or not 1 <= value <= 255:
        raise ImproperlyConfigured(
            f"task_queue_max_priority must be a number of priority levels from 1 to 255 "
            f"(or None: queues without priorities), not {value!r}"
        )
    quorum = "quorum" in (conf.task_default_queue_type, _queue_type_option(conf))
    if quorum and value != MAX_PRIORITY:
        raise ImproperlyConfigured(
            f"task_queue_max_priority is {value}, but the queues are quorum queues, which "
            f"have no priority levels to set: unset task_queue_max_priority, or use "
            f"classic queues (task_default_queue_type='classic')"
        )
    return value


def _queue_type_option(conf: Any) -> Any:
    return (conf.broker_transport_options or {}).get("queue_type")


def result_options(conf: Any, url: str | None) -> dict[str, Any]:
    """``result_backend_transport_options``, over the ``redis_*`` settings and
    ``redis_backend_use_ssl`` when the result store is Redis."""
    options: dict[str, Any] = dict(conf.result_backend_transport_options or {})
    if _scheme(url) not in _REDIS:
        return options
    from_settings: dict[str, Any] = {}
    for name, option in REDIS_RESULT_SETTINGS.items():
        value = conf[name]
        if value is not None or name in _NONE_MEANS_FOREVER:
            from_settings[option] = value
    ssl = conf.redis_backend_use_ssl
    if isinstance(ssl, Mapping):
        from_settings.update(ssl)
    return {**from_settings, **options}


def configure_backend(backend: Any, conf: Any) -> None:
    """What the app's settings tell any result store once it is built: ``result_extended``,
    the ``result_backend_always_retry`` policy, ``result_compression``,
    ``result_cache_max``, ``result_failure_expires`` and ``result_chord_expires``."""
    backend.extended = bool(conf.result_extended)
    backend.retry = StoreRetry.from_conf(conf)
    backend.compression = check_method(conf.result_compression)
    backend.cache = ResultCache(conf.result_cache_max)
    _failure_expires(backend, conf.result_failure_expires)
    _chord_expires(backend, conf.result_chord_expires)


def _failure_expires(backend: Any, value: Any) -> None:
    """``result_failure_expires`` where the store keeps records apart (Redis); 0 keeps
    failures forever, as in Celery. Elsewhere it is not applied, and says so."""
    if value is None:
        return
    if not backend.supports_failure_expires:
        warnings.warn(
            f"result_failure_expires is set, but the {type(backend).__name__} result store "
            f"does not apply it (only the Redis store does, as in Celery): failed results "
            f"expire with result_expires like any other",
            NotInEffectWarning,
            stacklevel=4,
        )
        return
    backend.failure_expires = expires_seconds(value) or None


def _chord_expires(backend: Any, value: Any) -> None:
    """``result_chord_expires`` where the store keeps the chord join bookkeeping apart
    (Redis); 0 keeps it forever, as in Celery. Elsewhere it is not applied, and says so."""
    if value is None:
        return
    if not backend.supports_chord_expires:
        warnings.warn(
            f"result_chord_expires is set, but the {type(backend).__name__} result store "
            f"does not apply it (the Redis store does): its chord bookkeeping expires with "
            f"result_expires",
            NotInEffectWarning,
            stacklevel=4,
        )
        return
    backend.chord_expires = expires_seconds(value) or None


__all__ = [
    "QUEUE_TYPES",
    "REDIS_RESULT_SETTINGS",
    "amqp_settings",
    "broker_options",
    "celery_queues",
    "configure_backend",
    "default_queue_type",
    "queue_max_priority",
    "result_options",
]


def make_backend(app: Any) -> ResultBackend:
    """``app.backend``: the store ``backend_cls`` builds, else the one the result URL names
    (the embedded Redis when neither URL is set), told the app's result settings."""
    conf = app.conf
    app._announce_configured()
    custom: ResultBackend | None = app._custom_backend()  # backend_cls, in an app subclass
    if custom is not None:
        configure_backend(custom, conf)
        return custom
    url = result_url(conf, conf.result_backend)  # 'redis': from redis_host, ...
    if url is None and broker_url(conf) is None:  # the embedded Redis keeps both
        url = embedded_results_url()
    backend = create_backend(
        url,
        conf.result_expires,
        conf.result_serializer,
        conf.result_accept_content or _result_accept(conf),
        result_options(conf, url),  # with the redis_* settings on Redis
        record_format=wire_formats(conf.wire_format)[1],
        database=database_settings(conf),  # for a db+ store
        cache=cache_settings(conf),  # for a cache+memcached:// store
        broker=lambda: app.broker,  # rpc:// answers through the broker
    )
    configure_backend(backend, conf)  # result_extended, the retry policy
    return backend


def _result_accept(conf: Any) -> list[str]:
    """Read back what we write: accept_content plus the result serializer (never pickle
    unless accept_content already names it)."""
    accept = list(conf.accept_content)
    if conf.result_serializer != "pickle" and conf.result_serializer not in accept:
        accept.append(conf.result_serializer)
    return accept
