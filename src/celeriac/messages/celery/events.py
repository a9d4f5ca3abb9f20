"""Events and remote-control replies as Celery's workers send them, for the monitors and
tools that read Celery's exchanges (Flower, celery-exporter, ``celery events``,
``celery inspect``).

Celery publishes each event alone to the ``celeryev`` exchange (a topic exchange on
RabbitMQ, a fanout one on Redis), routed by its type with ``-`` turned into ``.``
(``task-succeeded`` -> ``task.succeeded``); the body is the event's JSON object and the
``hostname`` header names the sender. Transient: a monitor that is not listening misses it.

Remote control (kombu's "pidbox"): a command is a JSON object (``method``, ``arguments``,
``destination``, ``pattern``, ``matcher``, ``ticket``, ``reply_to``) on the fanout exchange
``celery.pidbox``, each worker reading its own queue ``<hostname>.celery.pidbox``; a reply
is ``{hostname: value}`` sent to ``reply_to`` (the direct exchange
``reply.celery.pidbox``, the caller's routing key) with the command's ``ticket`` header.

Pure logic: imports ``celeriac.messages.wire`` and the stdlib only.
"""

from __future__ import annotations

import fnmatch
import json
import re
from collections.abc import Mapping
from typing import Any

from celeriac.messages.wire import WireParts

EXCHANGE = "celeryev"  # Celery's ``event_exchange`` default
CONTROL_EXCHANGE = "celery.pidbox"  # Celery's ``control_exchange`` ("celery") + ".pidbox"
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


def control_reply_parts(ticket: str, hostname: str, reply: Any) -> WireParts:
    """One worker's reply to the command of ``ticket``."""
    return WireParts(
        _dump({hostname: reply}).encode(CONTENT_ENCODING),
        headers={"ticket": ticket},
        properties={"content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING},
    )


def command_parts(method: str, arguments: Mapping[str, Any], clock: int = 0) -> WireParts:
    """A broadcast command to every worker, wanting no reply, as kombu's mailbox sends it."""
    body = {"method": method, "arguments": dict(arguments), "destination": None,
            "pattern": None, "matcher": None}  # fmt: skip
    return WireParts(
        _dump(body).encode(CONTENT_ENCODING),
        headers={"clock": clock, "expires": 0},
        properties={"content_type": CONTENT_TYPE, "content_encoding": CONTENT_ENCODING},
    )


def reply_address(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(exchange, routing key) a command's replies go to; None when it wants none."""
    reply_to = body.get("reply_to")
    if not isinstance(reply_to, Mapping) or not isinstance(body.get("ticket"), str):
        return None
    exchange, key = reply_to.get("exchange"), reply_to.get("routing_key")
    if not isinstance(exchange, str) or not isinstance(key, str) or not key:
        return None
    return exchange, key


def addressed_to(body: Mapping[str, Any], hostname: str) -> bool:
    """Whether a command is meant for ``hostname``: its ``destination`` list names it (or
    is empty), and its ``pattern`` (a glob, or a regular expression with the ``pcre``
    matcher) matches it."""
    destination = body.get("destination")
    if destination and hostname not in destination:
        return False
    pattern = body.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        return True
    if body.get("matcher") == "pcre":
        try:
            return re.search(pattern, hostname) is not None
        except re.error:
            return False
    return fnmatch.fnmatchcase(hostname, pattern)


__all__ = [
    "CONTROL_EXCHANGE",
    "EXCHANGE",
    "addressed_to",
    "command_parts",
    "control_reply_parts",
    "event_parts",
    "reply_address",
    "routing_key",
]
