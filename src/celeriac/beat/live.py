"""Live changes for a running beat: follow ``celeriac.beat.changes`` in a thread.

Runtime layer (beat): reads the topic ``app.beat`` writes (``app.beat_entries``) through
the broker seam's channel. The thread reads the whole history first (up to a marker it
publishes), then each change as it comes; the scheduler takes ``snapshot()`` at every
tick and rebuilds its entries when the version moved. A lost connection is waited out:
the stream resumes after the last change read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import uuid
from typing import Any

from celeriac.app.beat_entries import CHANGES, apply_change
from celeriac.brokers.base import Broker
from celeriac.exceptions import BrokerError

logger = logging.getLogger("celeriac.beat")


class LiveChanges:
    """The live entries (name -> fields, JSON form) as the changes so far make them."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.ready = threading.Event()  # the history has been read
        self._entries: dict[str, dict[str, Any]] = {}
        self._version = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="celeriac-beat-live", daemon=True)

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def snapshot(self) -> tuple[int, dict[str, dict[str, Any]]]:
        with self._lock:
            return self._version, {name: dict(f) for name, f in self._entries.items()}

    def _apply(self, payload: bytes) -> None:
        with self._lock:
            if apply_change(self._entries, payload):
                self._version += 1

    def _run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    await self._read()
                except BrokerError as exc:
                    logger.warning("beat: live changes: %s; trying again", exc)
                    await asyncio.sleep(1.0)
        finally:
            await self.broker.close_async()

    async def _read(self) -> None:
        marker = json.dumps({"marker": uuid.uuid4().hex}).encode()
        async with await self.broker.subscribe(CHANGES, history=True) as subscription:
            with self._lock:
                self._entries.clear()  # the history is read again from its start
            await self.broker.publish_topic_async(CHANGES, marker)
            while not self._stopping.is_set():
                try:
                    payload = await subscription.get(0.5)
                except BrokerError:
                    await subscription.wait_live(5.0)
                    continue
                if payload == marker:
                    self.ready.set()
                elif payload is not None:
                    self._apply(payload)
