"""``Producer``: turns a task call into a message and sends it (``app.send_task``).

Reads the app's settings (serializer, size limit, routes, publish retry policy), signs
through ``app.signer`` when messages are signed, encodes with the broker's wire format,
and hands the messages to a ``Sender`` (``app/sending.py``; the broker, unless
``app.sending_through`` chose another). For a call with an ``idempotency_key`` it calls
``Broker.reserve``/``release``: the key is reserved for the task id before sending, and
a call whose key is held by another task id sends nothing and returns that task's result
(within ``task_idempotency_ttl``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from celeriac import signals
from celeriac._context import get_current_request
from celeriac._tracing import PublishTrace
from celeriac.app.broker_connection import Connection
from celeriac.app.checks import is_persistent
from celeriac.app.send_settings import SendSettings
from celeriac.app.sending import (
    BrokerSender,
    RetryPolicy,
    Sender,
    chosen_sender,
    outbox_sender,
)
from celeriac.brokers.base import MIN_PRIORITY, OutboundMessage, check_priority
from celeriac.canvas.call_checks import check_call_options
from celeriac.canvas.signature import signature_dicts
from celeriac.canvas.stamping import stamp_names, stamps_in
from celeriac.exceptions import CeleriacError
from celeriac.messages import Message
from celeriac.messages.call_options import WORKER_DIRECT_EXCHANGE
from celeriac.messages.protocol import TaskBody, check_size, decode_task_body, task_message
from celeriac.result import AsyncResult

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


def _utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def resolve_eta(countdown: float | None, eta: Any, now: float) -> dt.datetime | None:
    if countdown is not None:
        return dt.datetime.fromtimestamp(now + float(countdown), dt.timezone.utc)
    if eta is None:
        return None
    if isinstance(eta, str):
        eta = dt.datetime.fromisoformat(eta)
    if not isinstance(eta, dt.datetime):
        raise TypeError(f"eta must be a datetime, not {type(eta).__name__}")
    return _utc(eta)


def resolve_expires(expires: Any, now: float) -> dt.datetime | None:
    if expires is None:
        return None
    if isinstance(expires, (int, float)):
        return dt.datetime.fromtimestamp(now + float(expires), dt.timezone.utc)
    if isinstance(expires, dt.timedelta):
        return dt.datetime.fromtimestamp(now + expires.total_seconds(), dt.timezone.utc)
    if isinstance(expires, str):
        expires = dt.datetime.fromisoformat(expires)
    if not isinstance(expires, dt.datetime):
        raise TypeError(f"expires must be seconds or a datetime, not {type(expires).__name__}")
    return _utc(expires)


def _delay(countdown: float | None, eta: dt.datetime | None, now: float) -> float | None:
    """Seconds until due. A countdown is passed as is, so the broker's clock measures it;
    an eta (an absolute time, in the caller's clock) becomes the time left until it."""
    if countdown is not None:
        return float(countdown)
    return None if eta is None else eta.timestamp() - now


def _body(message: Message) -> TaskBody:
    """The body the producer just encoded, read back (its own serializer is accepted)."""
    return decode_task_body(message, frozenset({message.content_type}))


def _ignored(route: Mapping[str, Any], task_type: Any) -> bool:
    """The worker's own test: the call's option, else the task's (or the setting)."""
    return bool(route.get("ignore_result")) or (
        task_type is not None and task_type.resolve_ignore_result()
    )


def _outbox_key(task_id: str, route: Mapping[str, Any]) -> str:
    """The idempotency key of a message sent through an outbox: its own task id, so the
    worker runs one copy of a message the relay published twice."""
    if route.get("idempotency_key") is not None:
        raise ValueError(
            "idempotency_key cannot be combined with the outbox: the outbox row's id (the "
            "task id) already makes the call run once, and a key reserved at call time "
            "would stay held if the transaction rolled back; leave idempotency_key out, or "
            "keep the uniqueness in your own table"
        )
    return f"outbox:{task_id}"


# One task call for ``send_many``: (name, args, kwargs, task_id, task_type, options).
Call = tuple[str, Sequence[Any] | None, Mapping[str, Any] | None, str, Any, dict[str, Any]]


def _end_traces(
    traces: list[PublishTrace], batch: PublishTrace | None, error: BaseException | None
) -> None:
    for traced in traces:
        traced.end(error)
    if batch is not None:
        batch.end(error)


@dataclass(slots=True)
class _Outgoing:
    """A task call turned into a message, not yet sent."""

    name: str
    task_id: str
    message: Message
    outbound: OutboundMessage
    route: Mapping[str, Any]
    key: str | None
    ignored: bool = False  # the worker will store no result for it
    reserved: bool = False


class Producer:
    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self._settings: SendSettings | None = None

    def settings(self) -> SendSettings:
        """The settings a call reads, as of the configuration's last change."""
        cached = self._settings
        if cached is None or cached.version != self.app.conf.version:
            cached = self._settings = SendSettings.read(self.app.conf)
        return cached

    def send_task(
        self,
        name: str,
        args: Sequence[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        *,
        task_id: str,
        task_type: Any = None,
        **options: Any,
    ) -> AsyncResult[Any]:
        return self.send_many([(name, args, kwargs, task_id, task_type, options)])[0]

    def send_many(self, calls: Sequence[Call]) -> list[AsyncResult[Any]]:
        """Send several task calls; the broker gets them in one ``publish_many`` (one round
        trip where the engine allows). Each call is ``(name, args, kwargs, task_id,
        task_type, options)``; the results come back in the same order."""
        tracing = self.app.tracing
        if tracing is None:
            return self._send_many(calls, None)
        traces: list[PublishTrace] = []  # a span per message, under one for a batch
        batch = tracing.start_batch(len(calls)) if len(calls) > 1 else None
        try:
            results = self._send_many(calls, traces)
        except BaseException as exc:
            _end_traces(traces, batch, exc)
            raise
        _end_traces(traces, batch, None)
        return results

    def _send_many(
        self, calls: Sequence[Call], traces: list[PublishTrace] | None
    ) -> list[AsyncResult[Any]]:
        sender = (self._sender(calls[0][5]) if calls else self.app.sender).resolve()
        repeatable = sender.may_repeat
        outgoing = [self._build(*call, traces=traces, repeatable=repeatable) for call in calls]
        results: list[AsyncResult[Any]] = []
        sending: list[_Outgoing] = []
        for item in outgoing:
            held = self.reserve_idempotency_key(item.key, item.task_id)
            if held is not None and held != item.task_id:  # the same id: a retry of it
                results.append(AsyncResult(held, task_name=item.name, app=self.app))
                continue
            item.reserved = held is None
            sending.append(item)
            result = self._result(item)
            result.ignored = item.ignored
            results.append(result)
        if not sending:
            return results
        published_at = time.time()  # task-sent's timestamp: before the worker can receive it
        try:
            for item in sending:
                self._announce(signals.before_task_publish, item)
            self._publish([item.outbound for item in sending], sending[0].route, sender)
        except BaseException:
            for item in sending:  # not sent: the key must not name it
                if item.key is not None and item.reserved:
                    with contextlib.suppress(CeleriacError):
                        self.app.broker.release(item.key, item.task_id)
            raise
        for item in sending:
            self._announce(signals.after_task_publish, item)
            if signals.task_sent.has_receivers:
                self._announce_sent(item)
        if self.settings().send_sent_event:
            published = [(item.message, item.outbound.queue) for item in sending]
            self.app.events.send_sent(published, timestamp=published_at)
        return results

    def _result(self, item: _Outgoing) -> AsyncResult[Any]:
        """The call's result handle: ``result_cls`` as Celery calls it (a class, or a
        factory such as a task's ``AsyncResult`` method, given the id), else ours."""
        factory = item.route.get("result_cls")
        if factory is None or isinstance(factory, type):
            cls = factory or AsyncResult
            result: AsyncResult[Any] = cls(item.task_id, task_name=item.name, app=self.app)
        else:
            result = factory(item.task_id)
        return result

    def _build(
        self,
        name: str,
        args: Sequence[Any] | None,
        kwargs: Mapping[str, Any] | None,
        task_id: str,
        task_type: Any,
        options: dict[str, Any],
        traces: list[PublishTrace] | None = None,
        repeatable: bool = False,
    ) -> _Outgoing:
        check_call_options(name, options)
        args, kwargs = tuple(args or ()), dict(kwargs or {})
        settings = self.settings()  # a task_protocol changed since is refused here
        direct = options.get("exchange") == WORKER_DIRECT_EXCHANGE  # the router maps that
        if options.get("queue") is None and options.get("routing_key") and not direct:
            options["queue"] = options["routing_key"]
        routed_as = options.get("route_name") or name  # Celery's route_name: route as another
        route = self.app.router.route(routed_as, args, kwargs, options, task=task_type)
        priority = self._priority(route.get("priority"), settings)
        ignored = _ignored(route, task_type)
        now = time.time()
        eta = resolve_eta(route.get("countdown"), route.get("eta"), now)
        parent = get_current_request()
        headers = route.get("headers")
        serializer = route.get("serializer") or settings.serializer
        signer = self.app.signer  # None unless messages are signed (docs/security.md)
        if traces is not None and self.app.tracing is not None:  # the trace context travels
            traced = self.app.tracing.start_publish(name, task_id, route["queue"], route)
            traces.append(traced)
            headers = {**(headers or {}), **traced.headers}
        message = task_message(
            task_name=name,
            task_id=task_id,
            args=args,
            kwargs=kwargs,
            serializer=serializer if signer is None else signer.body_serializer(serializer),
            max_size=settings.max_size,
            arg_names=task_type.arg_names() if task_type is not None else (),
            eta=eta,
            expires=resolve_expires(route.get("expires"), now),
            retries=int(route.get("retries") or 0),
            root_id=route.get("root_id") or (parent.root_id if parent else None),
            parent_id=route.get("parent_id") or (parent.id if parent else None),
            group_id=route.get("group_id"),
            group_index=route.get("group_index"),
            time_limit=route.get("time_limit"),
            soft_time_limit=route.get("soft_time_limit"),
            ignore_result=bool(route.get("ignore_result")),
            callbacks=signature_dicts(route.get("link")),
            errbacks=signature_dicts(route.get("link_error")),
            chain=route.get("chain"),
            chord=route.get("chord"),
            shadow=route.get("shadow"),
            priority=priority,
            reply_to=self._reply_to(route, ignored),
            extra_headers=headers,
            idempotency_key=_outbox_key(task_id, route)
            if repeatable
            else route.get("idempotency_key"),
            compression=route.get("compression") or settings.compression,
            stamped_headers=stamp_names(route),
            stamps=stamps_in(route),
            sent_at=round(now, 6),
            argsrepr=route.get("argsrepr"),
            kwargsrepr=route.get("kwargsrepr"),
            repr_maxlevels=settings.repr_maxlevels,
        )
        delay = _delay(route.get("countdown"), eta, now)
        # Signed as it goes out; ``message`` stays the plain one the publish signals read.
        sent = message if signer is None else signer.sign(message, serializer)
        payload = self.app.broker.wire_format.encode(sent)
        # Headers count too: a worker refuses a payload over its limit before reading it.
        check_size(name, "as sent (headers and body)", len(payload), settings.max_size)
        persistent = is_persistent(route.get("delivery_mode"), settings.delivery_mode)
        outbound = OutboundMessage(
            route["queue"], payload, message.id, priority or MIN_PRIORITY, delay, persistent
        )
        key = None if repeatable else route.get("idempotency_key")
        return _Outgoing(name, task_id, message, outbound, route, key, ignored)

    def _announce(self, signal: Any, item: _Outgoing) -> None:
        """``before_task_publish`` or ``after_task_publish``, with Celery's arguments: the
        body as ``(args, kwargs, embed)``, decoded only when someone listens."""
        if not signal.has_receivers:
            return
        extra: dict[str, Any] = {}
        if signal is signals.before_task_publish:
            extra = {
                "properties": item.message.properties,
                "declare": [],
                "retry_policy": self._retry_policy(item.route),
            }
        signal.send(
            sender=item.name,
            body=tuple(_body(item.message)),
            exchange="",
            routing_key=item.outbound.queue,
            headers=item.message.headers,
            **extra,
        )

    @staticmethod
    def _announce_sent(item: _Outgoing) -> None:
        """Celery's deprecated ``task_sent``, for receivers that still use it."""
        body, headers = _body(item.message), item.message.headers
        signals.task_sent.send(
            sender=item.name,
            task_id=item.task_id,
            task=item.name,
            args=body.args,
            kwargs=body.kwargs,
            eta=headers.get("eta"),
            taskset=headers.get("group"),
        )

    def _reply_to(self, route: Mapping[str, Any], ignored: bool) -> str | None:
        """The call's own ``reply_to``, else where this process's result store wants the
        worker to send the states (rpc://: this client's reply topic, listened to from now
        on); none for a call whose result is ignored."""
        given: str | None = route.get("reply_to")
        if given is not None or ignored:
            return given
        return self.app.backend.reply_address()

    def reserve_idempotency_key(self, key: str | None, task_id: str) -> str | None:
        """Reserve ``key`` for ``task_id`` for ``task_idempotency_ttl`` seconds.

        None: reserved now (or no key), go ahead. Else the task id the key already names
        (``task_id`` itself when a task re-sends itself, as a retry does). Eager calls
        (``task_always_eager``) use it too, so tests see what production does.
        """
        if key is None:
            return None
        if not isinstance(key, str) or not key:
            raise TypeError(f"idempotency_key must be a non-empty string, not {key!r}")
        ttl = float(self.app.conf.task_idempotency_ttl)
        return self.app.broker.reserve(key, task_id, ttl)

    def _priority(self, priority: Any, settings: SendSettings) -> int | None:
        if priority is None:
            priority = settings.default_priority
            parent = get_current_request() if settings.inherit_parent_priority else None
            if priority is None and parent:
                priority = parent.delivery_info.get("priority")
        if priority is not None:
            check_priority(priority)
        return cast("int | None", priority)

    def _retry_policy(self, route: Mapping[str, Any]) -> dict[str, Any]:
        """``task_publish_retry_policy`` with the call's own ``retry_policy`` over it."""
        return {**self.settings().publish_retry_policy, **(route.get("retry_policy") or {})}

    def _sender(self, options: Mapping[str, Any]) -> Sender:
        """Where the call's messages go: ``outbox=``, else ``connection=`` to another
        broker, else the sender ``sending_through`` chose, else the app's."""
        if options.get("outbox") is not None:
            return outbox_sender(options["outbox"])
        connection = options.get("connection")
        if isinstance(connection, Connection) and connection.owned:
            return BrokerSender(connection.broker)
        return chosen_sender(self.app) or self.app.sender

    def _publish(
        self, outbound: list[OutboundMessage], route: Mapping[str, Any], sender: Sender
    ) -> None:
        retry = route.get("retry")
        retry = self.settings().publish_retry if retry is None else retry
        policy = self._retry_policy(route)
        sender.send(outbound, RetryPolicy.from_options(bool(retry), policy))
