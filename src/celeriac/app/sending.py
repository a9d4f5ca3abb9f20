"""Senders: the last step of a task call, where built messages leave the producer.

``BrokerSender``, the default, publishes to the broker under the publish retry policy.
Another ``Sender`` may keep the messages somewhere first (rows in the caller's database
transaction, an outbox) and publish them later through a ``BrokerSender``.
``app.sending_through(sender)`` picks one for the current thread or asyncio task.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, ClassVar

from celeriac.brokers.base import Broker, OutboundMessage
from celeriac.exceptions import BrokerAccessRefused, BrokerConnectionError


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to try a publish again after a lost connection, and how long to wait."""

    max_retries: int = 3
    interval_start: float = 0.0
    interval_step: float = 0.2
    interval_max: float = 0.2

    @classmethod
    def from_options(cls, retry: bool, policy: Mapping[str, Any]) -> RetryPolicy:
        """From Celery's ``retry`` flag and ``retry_policy`` dict (missing keys: defaults)."""
        return cls(
            max_retries=int(policy.get("max_retries", 3)) if retry else 0,
            interval_start=float(policy.get("interval_start", 0)),
            interval_step=float(policy.get("interval_step", 0.2)),
            interval_max=float(policy.get("interval_max", 0.2)),
        )

    def waits(self) -> Iterator[float]:
        """The wait before each retry, in order: ``max_retries`` of them."""
        interval = self.interval_start
        for _ in range(self.max_retries):
            yield interval
            interval = min(interval + self.interval_step, self.interval_max)


class Sender(ABC):
    """Takes the messages of one ``apply_async`` (several for a group) once they are built.

    Called after ``before_task_publish`` and before ``after_task_publish``; the caller's
    ``AsyncResult`` ids are already fixed. A sender that raises fails the call, and an
    idempotency key reserved for it is released.
    """

    #: True for a sender whose messages may reach the broker more than once (an outbox
    #: relay killed between publishing and recording it): the producer then gives each
    #: message the idempotency key ``outbox:<task id>``, and the worker runs one copy.
    may_repeat: ClassVar[bool] = False

    def resolve(self) -> Sender:
        """The sender for the call being made now: this one, or one it picks by the
        caller's state (an outbox inside a database transaction, the broker outside)."""
        return self

    @abstractmethod
    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        """Hand ``messages`` on; return once they are safe where this sender keeps them."""

    @abstractmethod
    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        """``send`` for code running on an event loop."""


class BrokerSender(Sender):
    """Publishes to ``broker``: one round trip per batch, retried on a lost connection."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        waits = policy.waits()
        while True:
            try:
                if len(messages) == 1:
                    self.broker.publish(messages[0])
                else:
                    self.broker.publish_many(messages)
                return
            except BrokerAccessRefused:
                raise  # wrong credentials or vhost: another attempt would be refused too
            except BrokerConnectionError:
                wait = next(waits, None)
                if wait is None:
                    raise
                time.sleep(wait)

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        waits = policy.waits()
        while True:
            try:
                await self.broker.publish_many_async(messages)
                return
            except BrokerAccessRefused:
                raise
            except BrokerConnectionError:
                wait = next(waits, None)
                if wait is None:
                    raise
                await asyncio.sleep(wait)


# (app, sender) pairs chosen by ``sending_through`` in this context, innermost first. A
# ContextVar: each thread, and each asyncio task, sees only what it chose itself.
_CHOSEN: ContextVar[tuple[tuple[object, Sender], ...]] = ContextVar("celeriac_senders", default=())


def chosen_sender(app: object) -> Sender | None:
    """The sender ``sending_through`` chose for ``app`` in this context, if any."""
    for owner, sender in _CHOSEN.get():
        if owner is app:
            return sender
    return None


@contextlib.contextmanager
def sending_through(app: object, sender: Sender) -> Iterator[Sender]:
    """Send ``app``'s task calls through ``sender`` inside the block, in this context."""
    if not isinstance(sender, Sender):
        raise TypeError(
            f"sending_through needs a celeriac.app.sending.Sender, not "
            f"{type(sender).__name__}: subclass Sender and define send() and send_async()"
        )
    token = _CHOSEN.set(((app, sender), *_CHOSEN.get()))
    try:
        yield sender
    finally:
        _CHOSEN.reset(token)


# Turn the value of a call's ``outbox=`` option into a Sender; celeriac.outbox adds the
# SQLAlchemy ones when imported (the app cannot import it: it sits in a layer above).
_OUTBOX_ADAPTERS: list[Callable[[object], Sender | None]] = []


def register_outbox_adapter(adapter: Callable[[object], Sender | None]) -> None:
    """Let ``apply_async(outbox=...)`` take what ``adapter`` turns into a Sender."""
    if adapter not in _OUTBOX_ADAPTERS:
        _OUTBOX_ADAPTERS.append(adapter)


def outbox_sender(target: object) -> Sender:
    """The Sender for ``apply_async(outbox=target)``: a Sender as is, else an adapter's."""
    if isinstance(target, Sender):
        return target
    for adapter in _OUTBOX_ADAPTERS:
        sender = adapter(target)
        if sender is not None:
            return sender
    raise TypeError(
        f"outbox= takes a SQLAlchemy Session, Connection or AsyncSession (with "
        f"celeriac.outbox imported), a Django connection (with celeriac.contrib.django.outbox "
        f"in INSTALLED_APPS) or a celeriac Sender, not {type(target).__name__}"
    )
