"""``Request``: what ``self.request`` tells a running task about its call.

Imports leaves and ``messages``. Fields follow Celery's ``Task.request``; ours add
``delivery_count`` and ``idempotency_key``. Custom headers become attributes too. Also
Celery's ``task.push_request()``/``pop_request()``/``request_stack``, on top of the
per-context request (``celeriac._context``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from celeriac._context import current_request, get_current_request
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


_FIELDS = frozenset(f.name for f in dataclasses.fields(Request))


class Context(Request):
    """Celery's request class, built its way: ``Context({"id": "t1"}, retries=2, tenant="a")``.

    Mappings and keywords give the fields; any other name is an attribute too and, when
    no ``headers`` are given, a custom header (as a message's extra headers are). A
    ``Request`` in every other respect: ``self.request`` is one, so read it with ``get``.
    """

    def __init__(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        given = _merged(args, kwargs)
        extra = {name: given.pop(name) for name in list(given) if name not in _FIELDS}
        if given.get("headers") is None:
            given["headers"] = dict(extra)
        super().__init__(**given)
        self.__dict__.update(extra)

    def update(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Set fields and attributes from mappings and keywords, as Celery's."""
        for name, value in _merged(args, kwargs).items():
            setattr(self, name, value)

    @property
    def time_limit(self) -> float | None:
        """The hard time limit of ``timelimit`` (hard, soft)."""
        return (self.timelimit or (None, None))[0]

    @property
    def soft_time_limit(self) -> float | None:
        return (self.timelimit or (None, None))[1]

    def __repr__(self) -> str:
        return f"<Context: {vars(self)!r}>"


def _merged(args: tuple[Mapping[str, Any], ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    given: dict[str, Any] = {}
    for mapping in args:
        given.update(mapping)
    given.update(kwargs)
    return given


# Requests pushed with push_request in this context, newest last: (task name, token).
_pushed: ContextVar[tuple[tuple[str | None, Token[Any]], ...]] = ContextVar(
    "celeriac_pushed_requests", default=()
)


class RequestStack:
    """Celery's ``task.request_stack``: the requests of one task in this thread or
    coroutine. ``top`` is the running (or pushed) request, None outside a call."""

    def __init__(self, task_name: str | None) -> None:
        self.task_name = task_name

    @property
    def top(self) -> Request | None:
        current = get_current_request()
        return current if current is not None and current.task == self.task_name else None

    def push(self, request: Request) -> None:
        """Make ``request`` the one ``self.request`` reads until ``pop``."""
        token = current_request.set(request)
        _pushed.set((*_pushed.get(), (self.task_name, token)))

    def pop(self) -> Request | None:
        """Undo the latest ``push`` of this task and return its request; None (and
        nothing undone) when this task's latest push was already popped."""
        pushed = _pushed.get()
        if not pushed or pushed[-1][0] != self.task_name:
            return None
        request = self.top
        _pushed.set(pushed[:-1])
        current_request.reset(pushed[-1][1])
        return request


class RequestStackMembers:
    """``push_request``, ``pop_request`` and ``request_stack`` (mixed into ``Task``)."""

    @property
    def request_stack(self) -> RequestStack:
        task: Any = self  # a Task: its name and request
        return RequestStack(task.name)

    def push_request(self, *args: Mapping[str, Any], **kwargs: Any) -> None:
        """Run what follows with a request of your own, as Celery's does: the current
        ``self.request`` updated with a mapping and keyword fields (a name that is not a
        field reads as an attribute, like a custom header). Undo with ``pop_request``.
        A test sets ``task.push_request(id='t1', retries=2)`` before calling ``task()``."""
        given = {key: value for mapping in args for key, value in dict(mapping).items()}
        given.update(kwargs)
        task: Any = self
        base: Request = task.request
        headers = {**base.headers, **(given.pop("headers", None) or {})}
        headers.update({key: given.pop(key) for key in list(given) if key not in _FIELDS})
        fields = {f: getattr(base, f) for f in _FIELDS if f not in ("task", "headers")}
        request = Request(**{**fields, **given, "task": task.name}, headers=headers)
        self.request_stack.push(request)

    def pop_request(self) -> None:
        """Undo the latest ``push_request`` of this task."""
        self.request_stack.pop()
