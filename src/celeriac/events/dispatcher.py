"""``EventDispatcher``: sends events on the app's events topic (Celery's dispatcher).

Two faces. ``send`` publishes at once, from any thread (a client's ``task-sent``, a task's
``send_event``). ``post`` is for the worker's event loop: it only queues the event, and a
flusher task publishes what has queued as one payload per broker round trip, so a busy
worker sends few large payloads and an idle one sends each event at once. Events posted
while the broker is unreachable are kept (up to ``BUFFER_LIMIT``) and sent when it is back.
With a wire format that has events of its own (``wire_format = "celery"`` on RabbitMQ or
kombu's Redis layout), each event also goes where that format's monitors read it (Celery's
``celeryev``: Flower, celery-exporter), one message per event as Celery sends them.
Imports ``brokers.base``, ``exceptions`` and ``events.event``; never an engine or the app.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celeriac._futures import cancel_and_wait
from celeriac.brokers.base import Broker, Topic
from celeriac.events.event import (
    LamportClock,
    check_fields,
    check_serializer,
    encode,
    encode_batch,
    group_from,
    utcoffset,
)
from celeriac.exceptions import BrokerConnectionError, BrokerError

logger = logging.getLogger("celeriac.events")
BUFFER_LIMIT = 100_000  # events a worker keeps while the broker is unreachable
RETRY_PAUSE = 1.0  # seconds between attempts to flush after a failed publish
BATCH_LIMIT = 1000  # events in one payload at most
# Seconds between two publishes: an event after a quiet spell goes out at once, and under
# load the events of this long share one payload (one broker write instead of hundreds).
LINGER = 0.05


class EventDispatcher:
    """Sends events of ``groups`` (None: every group) when ``enabled``; each event gets
    ``hostname``, ``utcoffset``, ``pid`` and a ``clock`` value, as in Celery."""

    def __init__(
        self,
        broker: Broker,
        topic: Topic,
        *,
        hostname: str,
        enabled: bool = True,
        groups: Iterable[str] | None = None,
        clock: LamportClock | None = None,
        serializer: str = "json",
    ) -> None:
        self.broker, self.topic, self.hostname = broker, topic, hostname
        self.serializer = check_serializer(serializer)
        self.enabled = enabled
        self.groups: set[str] | None = None if groups is None else set(groups)
        self.clock = clock or LamportClock()
        self.pid = os.getpid()
        self.utcoffset = utcoffset()
        self.dropped = 0  # events lost to a full buffer
        #: Called with no argument when ``enable()``/``disable()`` change ``enabled``.
        self.on_enabled: set[Callable[[], None]] = set()
        self.on_disabled: set[Callable[[], None]] = set()
        self._buffer: collections.deque[dict[str, Any]] = collections.deque()
        self._wake: asyncio.Event | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._sending: asyncio.Lock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- what is sent ---------------------------------------------------------------------
    def sends(self, type_: str) -> bool:
        """Whether an event of this type would be sent now."""
        return self.enabled and (self.groups is None or group_from(type_) in self.groups)

    def event(self, type_: str, fields: Mapping[str, Any], blind: bool = False) -> dict[str, Any]:
        """The event as it is sent: ``fields`` with Celery's common fields added."""
        event = dict(fields)
        event["type"] = type_
        event.setdefault("timestamp", time.time())
        event["hostname"] = self.hostname
        event["utcoffset"] = self.utcoffset
        event["pid"] = self.pid
        event["clock"] = None if blind else self.clock.forward()
        return event

    def enable(self) -> None:
        if not self.enabled:
            self.enabled = True
            for callback in list(self.on_enabled):
                callback()

    def disable(self) -> None:
        if self.enabled:
            self.enabled = False
            for callback in list(self.on_disabled):
                callback()

    def enable_task_events(self) -> bool:
        """Send task events from now on (remote control's ``enable_events``); False when
        they were already sent."""
        if self.groups is None or "task" in self.groups:
            return False
        self.groups.add("task")
        return True

    def disable_task_events(self) -> bool:
        """Stop sending task events (``disable_events``); worker events go on. False when
        none were sent."""
        if self.groups is not None and "task" not in self.groups:
            return False
        self.groups = {"worker"} if self.groups is None else self.groups - {"task"}
        return True

    # -- the immediate face ---------------------------------------------------------------
    def send(
        self,
        type_: str,
        blind: bool = False,
        retry: bool = False,
        retry_policy: Mapping[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any] | None:
        """Publish one event now; the event sent, or None when its group is off. With
        ``retry``, a lost connection is retried under ``retry_policy`` (Celery's keys:
        ``max_retries``, ``interval_start``, ``interval_step``, ``interval_max``)."""
        check_fields(type_, fields)
        if not self.sends(type_):
            return None
        event = self.event(type_, fields, blind)
        payload = encode([event], self.serializer)
        policy = dict(retry_policy or {})
        attempts = int(policy.get("max_retries", 3)) if retry else 0
        wait = float(policy.get("interval_start", 0.0))
        for attempt in range(attempts + 1):
            try:
                if self.broker.publishes_wire_events:
                    self.broker.publish_wire_events([event])
                self.broker.publish_topic(self.topic, payload)
                return event
            except BrokerConnectionError:
                if attempt == attempts:
                    raise
            time.sleep(wait)
            step = float(policy.get("interval_step", 0.2))
            wait = min(wait + step, float(policy.get("interval_max", 0.2)))
        return event  # (not reached: the last attempt returns or raises)

    # -- the buffered face (the worker's event loop) --------------------------------------
    def post(self, type_: str, fields: dict[str, Any]) -> None:
        """Queue one event for the flusher (``start_flushing`` first); never blocks."""
        if not self.sends(type_):
            return
        # hostname, utcoffset and pid travel once per payload (``encode_batch``).
        fields["type"] = type_
        if "timestamp" not in fields:
            fields["timestamp"] = time.time()
        fields["clock"] = self.clock.forward()
        if len(self._buffer) >= BUFFER_LIMIT:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(fields)
        if self._wake is not None:
            self._wake.set()

    def post_threadsafe(self, type_: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Queue a custom event from any thread of this process (a task's ``send_event``
        in a worker's thread or asyncio pool), behind the events posted before it; None
        when this dispatcher does not flush here (send it with ``send`` instead)."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None or self._flusher is None or os.getpid() != self.pid:
            return None
        check_fields(type_, fields)
        fields["type"] = type_
        fields.setdefault("timestamp", time.time())
        fields["clock"] = self.clock.forward()
        self._buffer.append(fields)  # (one append: atomic under the GIL)
        with contextlib.suppress(RuntimeError):  # the loop closed: the worker is gone
            loop.call_soon_threadsafe(wake.set)
        return {**fields, "hostname": self.hostname, "utcoffset": self.utcoffset,
                "pid": self.pid}  # fmt: skip

    def start_flushing(self) -> None:
        """Publish posted events from a task on the running loop."""
        if self._flusher is None:
            self._loop = asyncio.get_running_loop()
            self._wake = asyncio.Event()
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_loop(), name="celeriac-events"
            )

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        failing = False
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._buffer:
                try:
                    await self._flush_once()
                except BrokerError as exc:
                    if not failing:  # the worker already warned of the outage: once is enough
                        logger.info("events not sent yet (kept until it works): %s", exc)
                    failing = True
                    await asyncio.sleep(RETRY_PAUSE)
                    continue
                failing = False
                if len(self._buffer) < BATCH_LIMIT:
                    await asyncio.sleep(LINGER)

    async def _flush_once(self) -> None:
        if self._sending is None:
            self._sending = asyncio.Lock()
        async with self._sending:  # one publish at a time: a batch is never sent twice
            await self._publish_batch()

    async def _publish_batch(self) -> None:
        buffer = self._buffer
        if not buffer:
            return
        batch = list(itertools.islice(buffer, BATCH_LIMIT))
        common = {"hostname": self.hostname, "utcoffset": self.utcoffset, "pid": self.pid}
        payload = encode_batch(common, batch, self.serializer)
        if self.broker.publishes_wire_events:  # first: a failure here sends neither again
            await self.broker.publish_wire_events_async([{**common, **e} for e in batch])
        await self.broker.publish_topic_async(self.topic, payload)
        for _ in range(len(batch)):  # what was posted meanwhile stays queued
            buffer.popleft()

    async def flush(self, timeout: float = 5.0) -> bool:
        """Publish what is queued now; False when it could not be sent within ``timeout``."""
        with contextlib.suppress(asyncio.TimeoutError, BrokerError):
            await asyncio.wait_for(self._flush_all(), timeout)
        return not self._buffer

    async def _flush_all(self) -> None:
        while self._buffer:
            await self._flush_once()

    async def close(self, timeout: float = 5.0) -> None:
        """Send what is queued (within ``timeout``), then stop the flusher."""
        if self._flusher is not None:
            await cancel_and_wait(self._flusher)
            self._flusher = self._loop = None
        if self._buffer and not await self.flush(timeout):
            logger.warning("%d event(s) could not be sent before stopping", len(self._buffer))


__all__ = ["EventDispatcher"]
