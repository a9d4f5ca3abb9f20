"""Connecting to RabbitMQ from a URL: parsing, TLS, transport options, password redaction.

Engine helper: imports the stdlib, ``celeriac.config`` and ``celeriac.exceptions`` only;
never the app or other engines. Forms: ``amqp://user:pass@host:5672/vhost`` and
``amqps://`` (TLS), with ``heartbeat`` and ``connection_timeout`` as query parameters;
several nodes of a cluster as kombu's failover list, ``amqp://a//;amqp://b//``.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from celeriac.config import tls
from celeriac.config.hints import warn_unknown
from celeriac.exceptions import ImproperlyConfigured

SCHEMES = ("amqp", "amqps", "pyamqp")
QUEUE_TYPES = ("classic", "quorum")
# broker_login_method -> aiormq's ``auth`` URL parameter (the SASL mechanisms it speaks).
LOGIN_METHODS = {"PLAIN": "plain", "EXTERNAL": "external"}
# Every transport option the engine reads; anything else warns with the closest name.
OPTIONS = frozenset(
    {"visibility_timeout", "queue_type", "heartbeat", "connect_timeout", "consumer_timeout",
     "revocation_retention", "confirm_timeout", "namespace", "confirm_publish",
     "confirm_window", "failover_strategy"}
)  # fmt: skip
# Celery's broker_use_ssl keys for RabbitMQ (py-amqp's names) that shape the SSLContext.
SSL_KEYS = frozenset(
    {"ca_certs", "certfile", "keyfile", "cert_reqs", "server_hostname", "ciphers",
     "tls_minimum_version", "tls_maximum_version"}
)  # fmt: skip
# aiormq's own TLS query parameters: it ignores them when given a context, as it always is.
_DRIVER_TLS_PARAMETERS = frozenset({"cafile", "capath", "cadata", "keyfile", "certfile",
                                    "no_verify_ssl"})  # fmt: skip
_PASSWORD = re.compile(r"(://[^:/@]*:)[^@/]*(@)")


def redact(url: str) -> str:
    """The URL with its password replaced by ``**``, for logs, errors and ``repr``."""
    return _PASSWORD.sub(r"\1**\2", url)


def check_options(options: Mapping[str, Any]) -> None:
    """Warn about a transport option this engine does not read (often a misspelling)."""
    known = sorted(OPTIONS)
    for key in options:
        if key not in OPTIONS:
            warn_unknown(
                f"broker_transport_options has an option {key!r} that RabbitMQ does not read",
                key,
                known,
                otherwise=f" (known: {', '.join(known)})",
                stacklevel=3,
            )


def _ssl_context(use_ssl: bool | Mapping[str, Any] | None, host: str) -> ssl.SSLContext:
    """An SSLContext from Celery's ``broker_use_ssl`` form (True, or a dict of py-amqp's
    keys). It verifies the server's certificate and host name unless ``cert_reqs`` says not."""
    options = dict(use_ssl) if isinstance(use_ssl, Mapping) else {}
    unknown = sorted(set(options) - SSL_KEYS)
    if unknown:
        raise ImproperlyConfigured(
            f"broker_use_ssl has keys celeriac does not read for RabbitMQ: {unknown}; "
            f"known: {sorted(SSL_KEYS)}"
        )
    tls.check_files(options, ("ca_certs", "certfile", "keyfile"), "broker_use_ssl")
    try:
        context = ssl.create_default_context(cafile=options.get("ca_certs"))
        if options.get("certfile"):
            context.load_cert_chain(options["certfile"], options.get("keyfile"))
    except ssl.SSLError as exc:
        raise ImproperlyConfigured(
            f"broker_use_ssl names files that are not a PEM certificate and its key ({exc}): "
            f"check ca_certs, certfile and keyfile"
        ) from exc
    if options.get("keyfile") and not options.get("certfile"):
        raise ImproperlyConfigured(
            "broker_use_ssl has a keyfile but no certfile: give the client certificate too "
            "({'certfile': '/path/to/client.crt', 'keyfile': '/path/to/client.key'})"
        )
    mode = tls.verify_mode(options.get("cert_reqs", "required"), "broker_use_ssl['cert_reqs']")
    if mode == ssl.CERT_NONE:  # the host name check needs a verified certificate
        context.check_hostname = False
    context.verify_mode = mode
    _limit(context, options)
    tls.warn_if_unverified(mode, f"RabbitMQ broker at {host}")
    return context


def _limit(context: ssl.SSLContext, options: Mapping[str, Any]) -> None:
    """py-amqp's ``ciphers``, ``tls_minimum_version`` and ``tls_maximum_version``."""
    for key in ("ciphers", "tls_minimum_version", "tls_maximum_version"):
        value = options.get(key)
        if value is None:
            continue
        try:
            if key == "ciphers":
                context.set_ciphers(value)
            else:  # minimum_version / maximum_version, an ssl.TLSVersion
                setattr(context, key.removeprefix("tls_"), ssl.TLSVersion(value))
        except (ssl.SSLError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"broker_use_ssl['{key}'] is {value!r}, which this Python's ssl module refuses "
                f"({exc}): use an OpenSSL cipher list for ciphers, an ssl.TLSVersion "
                f"(e.g. ssl.TLSVersion.TLSv1_2) for the versions"
            ) from exc


@dataclass(frozen=True)
class Target:
    """Where and how to connect: the URL aiormq reads, and its TLS context."""

    url: str  # with heartbeat/connection_timeout query parameters filled in
    safe_url: str  # the user's URL with the password hidden
    vhost: str
    user: str
    ssl_context: ssl.SSLContext | None
    connect_timeout: float
    # The name the server's certificate must hold, when not the URL's host (broker_use_ssl).
    server_hostname: str | None = None
    client_certificate: bool = False  # broker_use_ssl gives one (certfile)

    def connect_options(self) -> dict[str, Any]:
        """Keyword arguments for ``aiormq.connect``: the TLS context and server name."""
        if self.ssl_context is None:
            return {}
        named = {"server_hostname": self.server_hostname} if self.server_hostname else {}
        return {"context": self.ssl_context, **named}


def parse_target(
    url: str,
    options: Mapping[str, Any],
    use_ssl: bool | Mapping[str, Any] | None = None,
    login_method: str | None = None,
) -> Target:
    """Parse an ``amqp://``/``amqps://`` URL; name the problem and the fix when it cannot work."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ImproperlyConfigured(f"{redact(url)!r} is not an AMQP URL: use amqp:// or amqps://")
    secure = scheme == "amqps"
    if use_ssl and not secure:
        raise ImproperlyConfigured(
            f"broker_use_ssl is set but the broker URL {redact(url)!r} is not TLS: "
            f"use amqps:// (port 5671)"
        )
    query = dict(parse_qsl(parts.query))
    in_url = sorted(k for k in query if k.startswith("ssl_") or k in _DRIVER_TLS_PARAMETERS)
    if in_url:
        raise ImproperlyConfigured(
            f"the broker URL {redact(url)!r} has TLS options in its query ({', '.join(in_url)}),"
            f" which RabbitMQ URLs do not take: remove them and set broker_use_ssl, e.g. "
            f"{{'ca_certs': '/path/to/ca.pem', 'certfile': ..., 'keyfile': ...}}"
        )
    heartbeat = query.pop("heartbeat", str(options.get("heartbeat", 60)))
    timeout = float(query.pop("connection_timeout", options.get("connect_timeout", 4.0)))
    host = parts.hostname or "localhost"
    port = parts.port or (5671 if secure else 5672)
    user = unquote(parts.username) if parts.username is not None else "guest"
    password = unquote(parts.password) if parts.password is not None else "guest"
    # "amqp://host" and "amqp://host/" both mean the default vhost "/", as in Celery.
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    netloc = f"{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}"
    query.update(heartbeat=str(int(float(heartbeat))), timeout=str(max(1, int(timeout))))
    if login_method is not None:
        query["auth"] = _auth(login_method, secure, use_ssl)
    aiormq_url = (
        f"{'amqps' if secure else 'amqp'}://{netloc}/{quote(vhost, safe='')}?{urlencode(query)}"
    )
    context = _ssl_context(use_ssl, host) if secure else None
    given = use_ssl if isinstance(use_ssl, Mapping) else {}
    return Target(
        aiormq_url, redact(url), vhost, user, context, timeout,
        server_hostname=given.get("server_hostname"),
        client_certificate=bool(given.get("certfile")),
    )  # fmt: skip


def split_urls(url: str) -> list[str]:
    """The URLs of kombu's failover list ``amqp://a//;amqp://b//`` (blank entries dropped)."""
    return [part.strip() for part in url.split(";") if part.strip()]


def parse_targets(
    url: str,
    options: Mapping[str, Any],
    use_ssl: bool | Mapping[str, Any] | None = None,
    login_method: str | None = None,
) -> tuple[Target, ...]:
    """Every node of a failover list (one for a plain URL). The nodes of one cluster
    share their users and vhosts, so a list whose URLs log in differently is a mistake:
    refused, naming the URL that differs."""
    urls = split_urls(url)
    if not urls:
        raise ImproperlyConfigured(
            f"the broker URL {redact(url)!r} names no node: give amqp://host// (or several "
            f"nodes of a cluster, 'amqp://a//;amqp://b//')"
        )
    targets = tuple(parse_target(one, options, use_ssl, login_method) for one in urls)
    first = _login(targets[0])
    for target in targets[1:]:
        if _login(target) != first:
            raise ImproperlyConfigured(
                f"the broker URLs of a failover list must log in as the same user, with the "
                f"same password, to the same vhost (the nodes of a RabbitMQ cluster share "
                f"them): {target.safe_url!r} differs from {targets[0].safe_url!r}. Write the "
                f"same user, password and vhost in every URL"
            )
    return targets


def _login(target: Target) -> tuple[str | None, str | None, str]:
    parts = urlsplit(target.url)
    return parts.username, parts.password, parts.path


def _auth(login_method: str, secure: bool, use_ssl: bool | Mapping[str, Any] | None) -> str:
    """aiormq's ``auth`` for ``broker_login_method``; refused, with the fix, when it cannot
    log in (AMQPLAIN, which aiormq does not speak; EXTERNAL without a client certificate)."""
    method = str(login_method).upper()
    if method == "AMQPLAIN":
        raise ImproperlyConfigured(
            "broker_login_method 'AMQPLAIN' is not available: celeriac's AMQP client logs in "
            "with PLAIN (the same user and password, another encoding; RabbitMQ accepts "
            "both unless auth_mechanisms says otherwise). Set it to 'PLAIN' or unset it"
        )
    if method not in LOGIN_METHODS:
        raise ImproperlyConfigured(
            f"broker_login_method is {login_method!r}, a SASL mechanism celeriac cannot log "
            f"in with: use 'PLAIN' (user and password) or 'EXTERNAL' (TLS client certificate)"
        )
    certificate = isinstance(use_ssl, Mapping) and bool(use_ssl.get("certfile"))
    if method == "EXTERNAL" and not (secure and certificate):
        raise ImproperlyConfigured(
            "broker_login_method 'EXTERNAL' logs in with the TLS client certificate: use an "
            "amqps:// URL and give the certificate in broker_use_ssl "
            "({'certfile': '/path/to/client.crt', 'keyfile': '/path/to/client.key'})"
        )
    return LOGIN_METHODS[method]


def confirm_each_publish(options: Mapping[str, Any]) -> bool:
    """kombu's ``confirm_publish``: True waits for RabbitMQ's confirm on every publish;
    absent, confirms are pipelined (``pipeline``). False, no confirms at all, is refused
    rather than ignored."""
    value = options.get("confirm_publish", None)
    if value is None or value is True:
        return value is True
    raise ImproperlyConfigured(
        f"broker_transport_options['confirm_publish'] is {value!r}, but celeriac always "
        f"uses publisher confirms on RabbitMQ. Leave the option out (a publish returns at "
        f"once, its confirm is awaited in the background and a failure is raised by the "
        f"next publish or by app.broker.flush()), or set it to True (every publish waits "
        f"for its confirm, so a call that returned is never lost)"
    )


def confirm_window(options: Mapping[str, Any], default: int) -> int:
    value = options.get("confirm_window", default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"broker_transport_options['confirm_window'] must be a positive whole number "
            f"of messages (default {default}), not {value!r}"
        )
    return value


def queue_type(options: Mapping[str, Any], nodes: int = 1) -> str:
    """The ``queue_type`` option; unset, quorum for several nodes (a classic queue lives
    on one node and is out of reach while it is down), else classic."""
    value = str(options.get("queue_type", "quorum" if nodes > 1 else "classic"))
    if value not in QUEUE_TYPES:
        raise ImproperlyConfigured(
            f"broker_transport_options['queue_type'] must be 'classic' or 'quorum', not {value!r}"
        )
    return value


#: Quorum queues with message TTL and at-least-once dead-lettering: RabbitMQ 3.10 and later.
QUORUM_DELAYS_SINCE = (3, 10)


def server_version(properties: Mapping[str, Any]) -> tuple[int, ...] | None:
    """The server's version from its connection properties (``"3.10.8"`` -> (3, 10, 8));
    None when it does not say one."""
    value = properties.get("version")
    if isinstance(value, (bytes, bytearray)):
        value = bytes(value).decode("ascii", "replace")
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", str(value or ""))
    return None if found is None else tuple(int(part) for part in found.groups() if part)


@dataclass(frozen=True)
class QueueTypes:
    """The type of each queue celeriac declares: ``declared`` for the app's own queues
    (``known``; None: every queue), ``missing`` for a queue made on first use
    (``task_create_missing_queue_type``), ``delay`` for the delay-level queues
    (``broker_native_delayed_delivery_queue_type``; None: ``delays_on`` the server).
    None: the type it falls back to. ``each``: queues whose own declaration names their
    type (shared queues)."""

    declared: str = "classic"
    missing: str | None = None
    delay: str | None = None
    known: frozenset[str] | None = None
    each: Mapping[str, str] | None = None

    def __post_init__(self) -> None:
        for name, value in (
            ("task_create_missing_queue_type", self.missing),
            ("broker_native_delayed_delivery_queue_type", self.delay),
        ):
            if value is not None and value not in QUEUE_TYPES:
                raise ImproperlyConfigured(
                    f"{name} must be 'classic' or 'quorum' (or unset), not {value!r}"
                )

    def of(self, queue: str) -> str:
        """The type of the ready queue ``queue`` (and of its dead-letter queue)."""
        if self.each is not None and queue in self.each:
            return self.each[queue]
        if self.known is None or queue in self.known:
            return self.declared
        return self.missing or self.declared

    def delays_on(self, version: tuple[int, ...] | None) -> str:
        """The type of the delay-level queues on a server of ``version``: the one given;
        else quorum where the server has quorum queues with message TTL and at-least-once
        dead-lettering (a crash loses no countdown moving between levels), else classic."""
        if self.delay is not None:
            return self.delay
        supported = version is not None and version >= QUORUM_DELAYS_SINCE
        return "quorum" if supported else "classic"
