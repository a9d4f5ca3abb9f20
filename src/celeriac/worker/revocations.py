"""``Revocations``: the worker's own copy of the revoked task ids, kept in step by the broker.

Runtime: imports ``brokers.base``, ``worker.connection`` and the stdlib only. ``start``
subscribes to the broker's announcements first and then loads the live revocations (so
none falls in between); from then on ``is_revoked`` answers from memory, with no broker
round trip per message. Each id is forgotten when its revocation ends. Terminate requests
go to ``on_terminate``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType

from celeriac.brokers.base import Broker, Revocation, RevocationWatch
from celeriac.worker.connection import off_loop

logger = logging.getLogger("celeriac.worker")
SWEEP_EVERY = 60.0  # seconds between sweeps of ended revocations

#: ``on_terminate(task_id, signal_name)``: stop that task if it runs here (the pool's job).
TerminateCallback = Callable[[str, str], None]


class Revocations:
    """Revoked task ids with the time each is forgotten; one per worker, on its loop."""

    def __init__(
        self,
        broker: Broker,
        on_terminate: TerminateCallback | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.on_terminate = on_terminate
        self._clock = clock
        self._ends: dict[str, float] = {}  # task id -> clock() time it is forgotten
        self._watch: RevocationWatch | None = None
        self._swept_at = -math.inf

    async def start(self) -> None:
        """Follow the announcements, then load what was revoked before this worker started.

        Raises ``BrokerConnectionError`` when the broker cannot be reached.
        """
        if self._watch is not None:
            return
        self._watch = await self.broker.watch_revocations(self.apply)
        try:
            # Off the loop in a daemon thread: a worker stopped meanwhile need not wait.
            live = await off_loop(self.broker.revoked_ids)
        except BaseException:
            await self.stop()
            raise
        self._remember(live)
        if live:
            logger.info("%d revoked task ids are in force", len(live))

    async def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            await watch.stop()

    async def __aenter__(self) -> Revocations:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def is_revoked(self, task_id: str) -> bool:
        """O(1), from memory: must this task be skipped (not run, result REVOKED)?"""
        ends = self._ends.get(task_id)
        if ends is None:
            return False
        now = self._clock()
        if ends > now:
            return True
        del self._ends[task_id]
        return False

    __contains__ = is_revoked

    def __len__(self) -> int:
        """The revocations in force (ended ones may linger until the next sweep)."""
        return len(self._ends)

    def apply(self, revocation: Revocation) -> None:
        """Take in an announcement: remember its ids; terminate them if it asks."""
        self._remember(revocation.expires)
        if not revocation.terminate or self.on_terminate is None:
            return
        for task_id in revocation.task_ids:
            try:
                self.on_terminate(task_id, revocation.signal)
            except Exception:  # one failed kill must not stop the others, or the watch
                logger.exception("could not terminate revoked task %s", task_id)

    def _remember(self, ends: Mapping[str, float]) -> None:
        """``ends`` are unix times (``time.time()``); kept on this object's clock."""
        offset = self._clock() - time.time()
        for task_id, at in ends.items():
            at += offset
            if at > self._ends.get(task_id, -math.inf):
                self._ends[task_id] = at
        self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        self._ends = {task_id: at for task_id, at in self._ends.items() if at > now}
