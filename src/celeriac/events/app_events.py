"""``app.events``: the app's way to the events topic (Celery's ``app.events``).

``Dispatcher``, ``Receiver`` and ``State`` built for this app: its broker (or the one of a
connection given) and the topic named by ``event_exchange``. Imports ``events`` modules;
the app is duck-typed (``conf``, ``broker``), as the events package sits below the app.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, cast

from celeriac.brokers.base import Broker, Topic
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.event import LamportClock, encode, topic

if TYPE_CHECKING:
    from celeriac.events.receiver import EventReceiver, Handler
    from celeriac.events.state import State


def anon_nodename() -> str:
    """The node name of a process that is not a worker (a client): ``gen<pid>@<host>``."""
    return f"gen{os.getpid()}@{socket.gethostname()}"


def _broker_of(app: Any, connection: Any) -> Broker:
    """The broker of ``connection`` (an app ``Connection``, a ``Broker``, an app), else the
    app's own."""
    if connection is None:
        return cast(Broker, app.broker)
    if isinstance(connection, Broker):
        return connection
    broker = getattr(connection, "broker", None)
    if isinstance(broker, Broker):
        return broker
    raise TypeError(
        f"events need an app, an app.connection() or a Broker, not {type(connection).__name__}"
    )


class Events:
    """``app.events``: ``Dispatcher(...)``, ``Receiver(...)``, ``State(...)``."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.clock = LamportClock()  # this process's logical clock (Celery's app.clock)
        #: The dispatcher of a worker running in this process: a task's own events go
        #: through it, so they arrive after the worker's events for that task.
        self.worker_dispatcher: EventDispatcher | None = None

    @property
    def topic(self) -> Topic:
        """The stream the events travel on (``event_exchange``, ``celeryev`` by default)."""
        return topic(str(self.app.conf.event_exchange))

    def Dispatcher(
        self,
        connection: Any = None,
        hostname: str | None = None,
        enabled: bool = True,
        groups: Any = None,
    ) -> EventDispatcher:
        """A dispatcher sending as ``hostname`` (this process's node name by default)."""
        return EventDispatcher(
            _broker_of(self.app, connection), self.topic,
            hostname=hostname or anon_nodename(), enabled=enabled, groups=groups,
            clock=self.clock, serializer=str(self.app.conf.event_serializer),
        )  # fmt: skip

    def Receiver(
        self,
        channel: Any = None,
        handlers: Mapping[str, Handler] | None = None,
        *,
        history: bool = False,
        **_celery_options: Any,
    ) -> EventReceiver:
        """A receiver; ``channel`` is a connection (Celery's first argument), a broker or
        an app. Celery's queue options (``queue_ttl``...) name parts of kombu's event
        queue, which a stream does not have: they are refused."""
        if _celery_options:
            names = ", ".join(sorted(_celery_options))
            raise TypeError(
                f"Receiver() got {names}: events travel on a capped stream here, not a queue "
                f"per receiver, so there is nothing to set (see docs/monitoring.md, Events)"
            )
        app = self.app
        if channel is not None and hasattr(channel, "conf") and hasattr(channel, "events"):
            app, channel = channel, None  # an app given as the channel
        events: Events = app.events if app is not self.app else self
        from celeriac.events.receiver import EventReceiver  # (monitors only, not workers)

        return EventReceiver(
            _broker_of(app, channel), events.topic, handlers, history=history, clock=events.clock
        )

    def send_task_event(
        self,
        type_: str,
        uuid: str | None,
        hostname: str | None,
        retry: bool,
        retry_policy: Mapping[str, Any] | None,
        fields: dict[str, Any],
    ) -> dict[str, Any] | None:
        """``Task.send_event``: through the worker's dispatcher when the task runs in the
        worker's own process (thread and asyncio pools), else published at once."""
        local = self.worker_dispatcher
        if local is not None and local.hostname == hostname:
            posted = local.post_threadsafe(type_, {"uuid": uuid, **fields})
            if posted is not None:
                return posted
        with self.default_dispatcher(hostname=hostname) as dispatcher:
            return dispatcher.send(
                type_, uuid=uuid, retry=retry, retry_policy=retry_policy, **fields
            )

    def receive(
        self,
        handlers: Mapping[str, Handler],
        *,
        limit: int | None = None,
        timeout: float | None = None,
        history: bool = False,
        wakeup: bool = True,
    ) -> int:
        """Handle events with ``handlers`` until ``limit`` were handled or none came for
        ``timeout`` seconds (which ends it quietly); how many were handled. Ours: a
        receiver and its ``capture`` in one call."""
        handled = 0
        receiver = self.Receiver(self.app, handlers, history=history)
        try:
            for _ in receiver.itercapture(limit=limit, timeout=timeout, wakeup=wakeup):
                handled += 1
        except TimeoutError:
            pass
        return handled

    def State(self, **kwargs: Any) -> State:
        """An empty cluster state to feed events to (``state.event(event)``)."""
        # Loaded here, not with the app: only monitors keep a state, and workers never do.
        from celeriac.events.state import State

        return State(**kwargs)

    def send_sent(
        self, published: Iterable[tuple[Any, str]], timestamp: float | None = None
    ) -> None:
        """``task-sent`` for each ``(message, queue)`` just published, in one payload
        (``task_send_sent_event``); a broker error is the caller's, as the publish's."""
        dispatcher = self.Dispatcher()
        events = []
        for message, queue in published:
            headers = message.headers
            events.append(dispatcher.event("task-sent", {
                "uuid": message.id, "name": message.task_name,
                "args": headers.get("argsrepr") or "()",
                "kwargs": headers.get("kwargsrepr") or "{}",
                "retries": headers.get("retries") or 0, "eta": headers.get("eta"),
                "expires": headers.get("expires"), "root_id": headers.get("root_id"),
                "parent_id": headers.get("parent_id"), "queue": queue, "exchange": "",
                "routing_key": queue, "timestamp": timestamp or time.time(),
            }))  # fmt: skip
        if events:
            payload = encode(events, dispatcher.serializer)
            dispatcher.broker.publish_topic(dispatcher.topic, payload)

    @contextlib.contextmanager
    def default_dispatcher(
        self, hostname: str | None = None, enabled: bool = True
    ) -> Iterator[EventDispatcher]:
        """A dispatcher on the app's broker for the length of a ``with`` block."""
        yield self.Dispatcher(hostname=hostname, enabled=enabled)


__all__ = ["Events", "anon_nodename"]
