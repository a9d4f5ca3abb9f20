"""The broker and result store URLs the app connects to (the broker's for reading and for
writing, ``broker_read_url``/``broker_write_url``), from the URL settings and from
Celery 3's parts (``broker_host``, ``broker_user``, ... and ``redis_host``, ``redis_port``,
``redis_db``), composed the way kombu's ``Connection`` and Celery's Redis store do.

App core: reads ``app.conf`` values handed in and imports only the standard library.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

# Celery 3's parts of a broker URL, besides broker_host (the host, or a whole URL).
BROKER_PARTS = ("broker_transport", "broker_user", "broker_password", "broker_port", "broker_vhost")
_REDIS = ("redis", "rediss")


def _netloc(user: str | None, password: str | None, host: str | None, port: Any) -> str:
    login = quote(user, safe="") if user else ""
    if password:
        login += ":" + quote(password, safe="")
    where = host or "localhost"
    if ":" in where and not where.startswith("["):
        where = f"[{where}]"  # an IPv6 address
    if port:
        where += f":{int(port)}"
    return f"{login}@{where}" if login else where


def _path(transport: str, vhost: str | None) -> str:
    """kombu's virtual host: a database number on Redis, a RabbitMQ vhost on AMQP."""
    if not vhost:
        return ""
    if transport in _REDIS:
        return "/" + str(vhost).strip("/")
    return "/" + quote(str(vhost), safe="")


def broker_url(conf: Any) -> str | None:
    """``broker_url`` (``CELERY_BROKER_URL`` first), else ``broker_host``; what the URL
    leaves out (user, password, port, vhost) comes from the parts, and ``broker_transport``
    names the scheme when set, as in kombu. None when none of these is set."""
    given: str | None = conf.broker_url or conf.broker_host
    parts = {name: conf[name] for name in BROKER_PARTS}
    if not any(value not in (None, "") for value in parts.values()):
        return given  # nothing to compose: the URL as written (or the embedded default)
    if given and "://" in given:
        return _fill(given, parts)
    transport = (parts["broker_transport"] or "amqp").lower()
    if transport == "memory":
        return "memory://"
    netloc = _netloc(parts["broker_user"], parts["broker_password"], given, parts["broker_port"])
    return f"{transport}://{netloc}{_path(transport, parts['broker_vhost'])}"


def write_url(conf: Any) -> str | None:
    """Where calls are published: ``broker_write_url`` (``CELERY_BROKER_WRITE_URL``
    first), else the broker URL, as in Celery."""
    return conf.broker_write_url or broker_url(conf)


def read_url(conf: Any) -> str | None:
    """Where a worker consumes: ``broker_read_url`` (``CELERY_BROKER_READ_URL`` first),
    else the broker URL, as in Celery."""
    return conf.broker_read_url or broker_url(conf)


def _fill(url: str, parts: dict[str, Any]) -> str:
    """The URL's own user, password, port and vhost win; the parts fill the gaps."""
    split = urlsplit(url)
    transport = str(parts["broker_transport"] or split.scheme).lower()
    # Nothing to fill in; failover lists (;) and a cluster's nodes (,) stay whole.
    if transport == "memory" or ";" in url or "," in split.netloc:
        return url if transport == split.scheme.lower() else f"{transport}://"
    netloc = _netloc(
        split.username or parts["broker_user"],
        split.password or parts["broker_password"],
        split.hostname,
        split.port or parts["broker_port"],
    )
    path = split.path if len(split.path) > 1 else _path(transport, parts["broker_vhost"])
    return urlunsplit((transport, netloc, path, split.query, split.fragment))


def result_url(conf: Any, url: str | None) -> str | None:
    """``result_backend = 'redis'`` (no URL): the store at ``redis_host`` (localhost),
    ``redis_port`` (6379), database ``redis_db`` (0), as Celery's Redis store builds it. A
    ``redis://`` URL without a host or port takes them from those settings too; its
    database is its path alone. Other URLs are returned as they are."""
    if url is None:
        return None
    scheme = urlsplit(url).scheme.lower() if "://" in url else url.lower()
    if scheme not in _REDIS:
        return url
    host, port = conf.redis_host or "localhost", conf.redis_port or 6379
    if "://" not in url:
        return f"{scheme}://{_netloc(None, None, host, port)}/{int(conf.redis_db or 0)}"
    split = urlsplit(url)
    if (split.hostname and split.port) or not (conf.redis_host or conf.redis_port):
        return url  # nothing for the settings to fill in
    login = split.netloc.rpartition("@")[0]
    where = _netloc(None, None, split.hostname or host, split.port or port)
    netloc = f"{login}@{where}" if login else where
    return urlunsplit((split.scheme, netloc, split.path, split.query, split.fragment))
