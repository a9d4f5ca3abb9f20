"""The broker's channel: named topics to publish on and subscribe to (broadcast or
stream), and the ``Subscription`` every engine's subscriber is. Part of the ``Broker`` seam
(``brokers.base`` re-exports these names). Imports ``exceptions`` and the stdlib only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from celeriac.exceptions import BrokerConnectionError


# -- the channel: publish/subscribe on a named topic -----------------------------------------
class ChannelKind(str, enum.Enum):
    """How a topic carries its payloads."""

    BROADCAST = "broadcast"  # to every subscriber listening at that moment; nothing is kept
    STREAM = "stream"  # also kept: a bounded recent history a late subscriber can read


_TOPIC_NAME = re.compile(r"[A-Za-z0-9_.:-]{1,200}")
PENDING_LIMIT = 10_000  # payloads a subscription holds for a reader that falls behind


@dataclass(frozen=True, slots=True)
class Topic:
    """A named channel. A stream topic keeps about its last ``keep`` payloads (RabbitMQ:
    ``keep`` KiB, its streams are bounded by size). One name, one kind and ``keep``."""

    name: str
    # The enum or its value ("broadcast", "stream"): always the enum once built.
    kind: ChannelKind | Literal["broadcast", "stream"] = ChannelKind.BROADCAST
    keep: int = 1000

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _TOPIC_NAME.fullmatch(self.name):
            raise ValueError(f"a topic name is 1-200 letters, digits and '_.:-', not {self.name!r}")
        try:
            object.__setattr__(self, "kind", ChannelKind(self.kind))
        except ValueError:
            raise ValueError(
                f"a topic's kind is 'broadcast' or 'stream', not {self.kind!r}"
            ) from None
        if not isinstance(self.keep, int) or self.keep < 1:
            raise ValueError(f"a stream topic keeps at least 1 payload, not {self.keep!r}")


class Subscription(ABC):
    """The payloads published on ``topic`` after ``subscribe`` returned, in publish order,
    handed out on the subscribing event loop by ``get`` or ``async for``.

    A lost connection surfaces once as ``BrokerConnectionError`` from ``get``; the engine
    reconnects by itself and ``wait_live`` returns once it receives again. On a broadcast
    topic, what was published meanwhile is missed; a stream topic resumes after the last
    payload handed out (while the history still holds it). A reader that falls more than
    ``PENDING_LIMIT`` payloads behind loses the newest (counted in ``dropped``).
    Engines call ``deliver``/``lost``/``resumed`` from any thread and implement ``_stop``.
    """

    def __init__(self, topic: Topic) -> None:
        self.topic = topic
        self.loop = asyncio.get_running_loop()
        self.dropped = 0
        self._items: collections.deque[bytes | BrokerConnectionError] = collections.deque()
        self._ready = asyncio.Event()
        self._live = asyncio.Event()
        self._live.set()
        self._down = self._closed = False

    # -- engine side (any thread) ---------------------------------------------------------
    def deliver(self, payload: bytes) -> None:
        self._call(self._add, payload)

    def lost(self, exc: BrokerConnectionError) -> None:
        self._call(self._lose, exc)

    def resumed(self) -> None:
        self._call(self._resume)

    def _call(self, step: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self.loop.call_soon_threadsafe(step, *args)

    def _add(self, payload: bytes) -> None:
        if self._closed:
            return
        if len(self._items) >= PENDING_LIMIT:
            self.dropped += 1
            return
        self._items.append(payload)
        self._ready.set()

    def _lose(self, exc: BrokerConnectionError) -> None:
        if not self._closed and not self._down:  # once per outage
            self._down = True
            self._live.clear()
            self._items.append(exc)
            self._ready.set()

    def _resume(self) -> None:
        self._down = False
        self._live.set()

    # -- reader side (the subscribing loop) -----------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    async def get(self, timeout: float | None = None) -> bytes | None:
        """The next payload; None once ``timeout`` passes or the subscription is closed."""
        deadline = None if timeout is None else self.loop.time() + timeout
        while not self._items:
            if self._closed:
                return None
            self._ready.clear()
            left = None if deadline is None else deadline - self.loop.time()
            if left is not None and left <= 0:
                return None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._ready.wait(), left)
        item = self._items.popleft()
        if isinstance(item, BrokerConnectionError):
            raise item
        return item

    async def wait_live(self, timeout: float | None = None) -> bool:
        """Wait until the subscription receives again after an outage; False on timeout."""
        try:
            await asyncio.wait_for(self._live.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return not self._closed

    async def close(self) -> None:
        """Stop receiving and free what the engine holds; ``get`` returns None after it."""
        if self._closed:
            return
        self._closed = True
        self._items.clear()
        self._ready.set()
        self._live.set()
        await self._stop()

    @abstractmethod
    async def _stop(self) -> None:
        """The engine's side of ``close``: unsubscribe and release the connection."""

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> bytes:
        payload = await self.get()
        if payload is None:
            raise StopAsyncIteration
        return payload

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def checked_payload(payload: bytes) -> bytes:
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise TypeError(f"a topic's payload is bytes (encode it first), not {type(payload)}")
    return bytes(payload)
