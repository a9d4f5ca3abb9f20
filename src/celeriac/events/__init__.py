"""Celery-compatible events: what workers and clients send, how to receive them, and the
cluster state they build (``app.events``, ``celeriac events``).

Events travel on the broker's channel as a stream topic (``event_exchange``): a capped
Redis stream, a RabbitMQ stream behind the events exchange. Sits below the app core (the
app and ``Task.send_event`` use it) and above the seams: imports ``brokers.base``,
``messages``, ``states`` and the stdlib, never an engine, the app or the worker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from celeriac.events.app_events import Events, anon_nodename
from celeriac.events.dispatcher import EventDispatcher
from celeriac.events.event import Event, LamportClock, group_from

if TYPE_CHECKING:
    from celeriac.events.receiver import EventReceiver
    from celeriac.events.state import State


def __getattr__(name: str) -> Any:
    # The cluster state is for monitors: a worker, which imports this package, never
    # loads it.
    if name == "State":
        from celeriac.events.state import State

        return State
    if name == "EventReceiver":  # (likewise: what receives events, a worker never loads)
        from celeriac.events.receiver import EventReceiver

        return EventReceiver
    raise AttributeError(f"module 'celeriac.events' has no attribute {name!r}")


__all__ = [
    "Event",
    "EventDispatcher",
    "EventReceiver",
    "Events",
    "LamportClock",
    "State",
    "anon_nodename",
    "group_from",
]
