"""Events as Celery's workers send them, for monitors that read Celery's event exchange
(Flower, celery-exporter, ``celery events``).

Celery publishes each event alone to the ``celeryev`` exchange (a topic exchange on
RabbitMQ, a fanout one on Redis), routed by its type with ``-`` turned into ``.``
(``task-succeeded`` -> ``task.succeeded``); the body is the event's JSON object and the
``hostname`` header names the sender. Transient: a monitor that is not listening misses it.

Pure logic: imports ``celeriac.messages.wire`` and the stdlib only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from celeriac.messages.wire import WireParts

EXCHANGE = "celeryev"  # Celery's ``event_exchange`` default
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"


def routing_key(event_type: str) -> str:
    return event_type.replace("-", ".")


def _text(value: Any) -> Any:
    """A value JSON has no form for, as Celery's JSON serializer writes it (text)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


_dump = json.JSONEncoder(separators=(", ", ": "), default=_text).encode


def event_parts(event: Mapping[str, Any]) -> tuple[str, WireParts]:
    """(routing key, parts) of ``event`` as a Celery worker publishes it."""
    body = _dump(dict(event)).encode(CONTENT_ENCODING)
    parts = WireParts(
        body,
        headers={"hostname": event.get("hostname")},
        properties={"content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING},
    )
    return routing_key(str(event.get("type", ""))), parts


__all__ = ["EXCHANGE", "event_parts", "routing_key"]
