"""The two brokers of a move: the source, read in Celery's wire format (or celeriac's), and
the target, written in celeriac's own, each built from its URL and the app's settings.

Runtime layer: imports the app core (``broker_for_url``), never an engine. Both sides take
the app's queue settings (``task_queues``, queue types, ``task_queue_max_priority``, the
delivery limit), so an ``amqp://`` source declares its queues as the Celery workers did.
The app's ``broker_transport_options`` and ``broker_use_ssl`` apply only to a URL of the
same kind as the app's broker (another kind reads other options); options given for a
side go over them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from celeriac.app.broker_connection import broker_for_url
from celeriac.app.urls import broker_url
from celeriac.brokers.base import Broker
from celeriac.exceptions import ImproperlyConfigured

#: ``--from-format``: how the source's messages are written (the ``wire_format`` values).
FORMATS = ("celery", "celeriac")
_KOMBU = ("kombu+redis", "kombu+rediss", "kombu+unix", "kombu+sentinel")
_AMQP = ("amqp", "amqps", "pyamqp")
_STREAMS = ("redis", "rediss", "unix", "sentinel", "redis+cluster", "rediss+cluster")
_PORTS = {"amqp": 5672, "pyamqp": 5672, "amqps": 5671, "redis": 6379, "rediss": 6379}


def _scheme(url: str | None) -> str:
    return urlsplit(url or "").scheme.lower()


def _kind(url: str | None) -> str:
    """The kind of broker a URL names, for sharing settings: its options differ by kind."""
    scheme = _scheme(url)
    if scheme in _KOMBU:
        return "kombu"
    if scheme in _AMQP:
        return "amqp"
    return "redis" if scheme in _STREAMS else scheme


class SideSettings:
    """The app's settings as one side reads them: its wire format, and the app's broker
    transport options and TLS only when ``url`` is of the app broker's kind."""

    def __init__(self, conf: Any, url: str, wire_format: str, options: Mapping[str, Any]) -> None:
        own_kind = _kind(url) == _kind(broker_url(conf))
        given = dict(conf.broker_transport_options or {}) if own_kind else {}
        self._conf = conf
        self._values: dict[str, Any] = {
            "wire_format": wire_format,
            "broker_transport_options": {**given, **options},
            "broker_use_ssl": conf.broker_use_ssl if own_kind else None,
        }

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        values = self.__dict__["_values"]
        return values[name] if name in values else getattr(self._conf, name)

    def __getitem__(self, name: str) -> Any:
        return self._values[name] if name in self._values else self._conf[name]

    def is_set(self, name: str) -> bool:
        return name in self._values or bool(self._conf.is_set(name))


def _where(url: str) -> tuple[str, str, int | None, str]:
    """(kind, host, port, vhost or database) of a URL, its credentials left out."""
    parts = urlsplit(url)
    path = unquote(parts.path[1:]) if parts.path else ""
    port = parts.port or _PORTS.get(parts.scheme.lower().rpartition("+")[2])
    return _kind(url), (parts.hostname or "localhost").lower(), port, path or "/"


def check_urls(source: str, target: str, from_format: str, renames: Mapping[str, str]) -> None:
    """Refuse, naming the fix, a pair of URLs a move cannot work with."""
    if from_format not in FORMATS:
        raise ImproperlyConfigured(
            f"--from-format is {from_format!r}: give 'celery' (Celery's task messages, the "
            f"default) or 'celeriac' (celeriac's own envelope)"
        )
    for side, url in (("--from", source), ("--to", target)):
        if _scheme(url) == "memory" or "://" not in url:
            raise ImproperlyConfigured(
                f"{side} must be a broker URL another process can reach (kombu+redis://, "
                f"redis://, amqp://...), not {url.split('://')[0]!r}"
            )
    if from_format == "celery" and _kind(source) == "redis":
        raise ImproperlyConfigured(
            "--from names celeriac's Redis Streams layout (redis://), where Celery keeps no "
            "queues: Celery's Redis queues are kombu's lists, so write the source as "
            "kombu+redis://host:6379/0 (same host and database as the Celery workers' "
            "broker_url); to move between two celeriac brokers use 'celeriac migrate'"
        )
    if _kind(target) == "kombu":
        raise ImproperlyConfigured(
            "--to names kombu's Redis layout (kombu+redis://), which is for sharing queues "
            "with Celery workers: the target of migrate-queue is celeriac's own layout, "
            "redis://host:6379/0 or amqp://host/vhost"
        )
    if _where(source) == _where(target):
        same = sorted(src for src, dest in renames.items() if src == dest)
        if same:
            raise ImproperlyConfigured(
                f"--from and --to are the same broker, and queue {same[0]!r} would be moved "
                f"onto itself: give the target a vhost or database of its own (e.g. "
                f"amqp://host/new-vhost), or rename the queue: --queue {same[0]}:"
                f"{same[0]}-native"
            )


@dataclass
class Sides:
    source: Broker
    target: Broker

    def close(self) -> None:
        self.source.close()
        self.target.close()


def open_sides(
    conf: Any,
    source: str,
    target: str,
    from_format: str = "celery",
    source_options: Mapping[str, Any] | None = None,
    target_options: Mapping[str, Any] | None = None,
) -> Sides:
    """The source broker, reading ``from_format``, and the target, writing celeriac's
    envelope; the target waits for each publish to be stored before it returns."""
    reading = SideSettings(conf, source, from_format, source_options or {})
    writing = SideSettings(conf, target, "celeriac", target_options or {})
    reader = broker_for_url(reading, source)
    try:
        writer = broker_for_url(writing, target)
    except BaseException:
        reader.close()
        raise
    writer.confirm_each_publish()
    return Sides(reader, writer)


__all__ = ["FORMATS", "SideSettings", "Sides", "check_urls", "open_sides"]
