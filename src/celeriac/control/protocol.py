"""The remote-control messages: a command on the control topic, replies on a topic of the
caller's own, in one format.

Pure logic (stdlib and the channel's ``Topic``). A command is JSON:
``{"method": name, "arguments": {...}, "destination": [nodes] | null, "ticket": id | null}``;
a ticket asks for replies, published on ``reply_topic(ticket)`` as
``{"ticket": id, "hostname": node, "reply": value}``. Values that JSON cannot carry travel
as their ``repr`` (sets and tuples as lists), as Celery's json serializer would refuse them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from celeriac.brokers.base import Topic

#: Every worker listens here (a broadcast topic: a command reaches the workers up now).
CONTROL = Topic("celeriac.control")
_REPLY_PREFIX = "celeriac.reply."


def reply_topic(ticket: str) -> Topic:
    """The topic the replies to one command travel on; only its caller listens."""
    return Topic(_REPLY_PREFIX + ticket)


@dataclass(frozen=True, slots=True)
class Command:
    """A control or inspect command as a worker receives it."""

    method: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    destination: tuple[str, ...] | None = None  # None: every worker
    ticket: str | None = None  # None: no reply wanted

    def is_for(self, hostname: str) -> bool:
        return self.destination is None or hostname in self.destination


def _jsonable(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        try:
            return sorted(value)
        except TypeError:
            return list(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    isoformat = getattr(value, "isoformat", None)  # datetime, date, time
    if callable(isoformat):
        return isoformat()
    return repr(value)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":"), default=_jsonable).encode()


def encode_command(
    method: str,
    arguments: Mapping[str, Any] | None = None,
    destination: Sequence[str] | None = None,
    ticket: str | None = None,
) -> bytes:
    body = {
        "method": method,
        "arguments": dict(arguments or {}),
        "destination": None if destination is None else list(destination),
        "ticket": ticket,
    }
    return _dumps(body)


def decode_command(data: bytes) -> Command | None:
    """The command in ``data``; None for anything else (garbage is ignored, not fatal)."""
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict):
        return None
    method, arguments = body.get("method"), body.get("arguments") or {}
    destination, ticket = body.get("destination"), body.get("ticket")
    if not isinstance(method, str) or not isinstance(arguments, dict):
        return None
    if destination is not None and not (
        isinstance(destination, list) and all(isinstance(d, str) for d in destination)
    ):
        return None
    if ticket is not None and not isinstance(ticket, str):
        return None
    nodes = None if destination is None else tuple(destination)
    return Command(method, arguments, nodes, ticket)


def encode_reply(ticket: str, hostname: str, value: Any) -> bytes:
    return _dumps({"ticket": ticket, "hostname": hostname, "reply": value})


def decode_reply(data: bytes, ticket: str) -> tuple[str, Any] | None:
    """``(hostname, reply)`` from a reply to ``ticket``; None for anything else."""
    try:
        body = json.loads(data)
    except (ValueError, TypeError):
        return None
    if not isinstance(body, dict) or body.get("ticket") != ticket:
        return None
    hostname = body.get("hostname")
    return (hostname, body.get("reply")) if isinstance(hostname, str) else None
