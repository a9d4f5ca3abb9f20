"""``Request``: what ``self.request`` tells a running task about its call.

Imports leaves and ``messages``. Fields follow Celery's ``Task.request``; ours add
``delivery_count`` and ``idempotency_key``. Custom headers become attributes too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from celeriac.messages.envelope import Message
from celeriac.messages.protocol import TaskBody

_HEADER_FIELDS = (
    "eta",
    "expires",
    "group",
    "group_index",
    "root_id",
    "parent_id",
    "origin",
    "shadow",
)


@dataclass(eq=False)
class Request:
    """The context of one task execution (``called_directly`` when there is none)."""

    id: str | None = None
    task: str | None = None
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    retries: int = 0
    is_eager: bool = False
    called_directly: bool = True
    eta: str | None = None
    expires: str | None = None
    group: str | None = None
    group_index: int | None = None
    chord: dict[str, Any] | None = None
    chain: list[dict[str, Any]] | None = None
    callbacks: list[dict[str, Any]] | None = None
    errbacks: list[dict[str, Any]] | None = None
    root_id: str | None = None
    parent_id: str | None = None
    origin: str | None = None
    shadow: str | None = None
    hostname: str | None = None
    delivery_info: dict[str, Any] = field(default_factory=dict)
    reply_to: str | None = None
    correlation_id: str | None = None
    timelimit: tuple[float | None, float | None] = (None, None)
    ignore_result: bool = False
    delivery_count: int = 1
    idempotency_key: str | None = None
    # Celery's stamping: the stamps' names, and name -> value (canvas.stamping).
    stamped_headers: list[str] = field(default_factory=list)
    stamps: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    # Results of the calls this run sent (Task.add_trail), stored with its result.
    children: list[Any] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        # Custom headers passed with apply_async(headers=...) read as attributes, as in Celery.
        headers = self.__dict__.get("headers") or {}
        if name in headers:
            return headers[name]
        raise AttributeError(name)

    def get(self, key: str, default: Any = None) -> Any:
        """``self.request.get('tenant')``: a field or custom header, else ``default``."""
        return getattr(self, key, default)

    @classmethod
    def from_message(
        cls,
        message: Message,
        body: TaskBody,
        *,
        queue: str | None = None,
        hostname: str | None = None,
        delivery_count: int = 1,
    ) -> Request:
        # Every field read here was checked by messages.validation (the worker's prepare).
        h = message.headers
        timelimit = h.get("timelimit") or (None, None)
        stamped = h.get("stamped_headers") or ()
        request = cls(
            id=message.id,
            task=message.task_name,
            args=body.args,
            kwargs=body.kwargs,
            retries=int(h.get("retries") or 0),
            called_directly=False,
            chord=body.embed.get("chord"),
            chain=body.embed.get("chain"),
            callbacks=body.embed.get("callbacks"),
            errbacks=body.embed.get("errbacks"),
            hostname=hostname,
            delivery_info={
                "exchange": "",
                "routing_key": queue,
                "priority": message.properties.get("priority"),
                "redelivered": delivery_count > 1,
            },
            reply_to=message.properties.get("reply_to"),
            correlation_id=message.properties.get("correlation_id") or message.id,
            timelimit=(timelimit[0], timelimit[1]),
            ignore_result=bool(h.get("ignore_result")),
            delivery_count=delivery_count,
            idempotency_key=h.get("idempotency_key"),
            stamped_headers=list(stamped),
            stamps={name: (h.get("stamps") or {}).get(name) for name in stamped},
            headers=h,
            properties=message.properties,
        )
        for name in _HEADER_FIELDS:
            setattr(request, name, h.get(name))
        request.root_id = request.root_id or message.id  # written only when it differs
        return request
