"""``Revocations``: the worker's own copy of the revoked task ids, kept in step by the broker.

Runtime: imports ``brokers.base``, ``messages.revocation``, ``worker.connection`` and the
stdlib. ``start`` subscribes to the broker's ``REVOCATIONS`` topic first and then loads the
live revocations (so none falls in between); from then on ``is_revoked`` answers from
memory, with no broker round trip per message. After an outage of the subscription, the
live revocations are loaded again (what was announced meanwhile is not missed; a terminate
request sent then is). Each id is forgotten when its revocation ends. Terminate requests go
to ``on_terminate``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping
from types import TracebackType

from celeriac.brokers.base import REVOCATIONS, Broker, Revocation, Subscription
from celeriac.exceptions import BrokerError
from celeriac.messages import revocation
from celeriac.worker.connection import backoff, off_loop

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
        self._subscription: Subscription | None = None
        self._follower: asyncio.Task[None] | None = None
        self._swept_at = -math.inf

    async def start(self) -> None:
        """Follow the announcements, then load what was revoked before this worker started.

        Raises ``BrokerConnectionError`` when the broker cannot be reached.
        """
        if self._subscription is not None:
            return
        subscription = self._subscription = await self.broker.subscribe(REVOCATIONS)
        try:
            # Off the loop in a daemon thread: a worker stopped meanwhile need not wait.
            live = await off_loop(self.broker.revoked_ids)
        except BaseException:
            await self.stop()
            raise
        self._remember(live)
        if live:
            logger.info("%d revoked task ids are in force", len(live))
        self._follower = asyncio.create_task(self._follow(subscription), name="celeriac-revoked")

    async def stop(self) -> None:
        follower, self._follower = self._follower, None
        subscription, self._subscription = self._subscription, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if subscription is not None:
            await subscription.close()

    async def _follow(self, subscription: Subscription) -> None:
        while True:
            try:
                payload = await subscription.get()
            except BrokerError as exc:  # the worker's consumer reports an outage once
                logger.debug("revocations: the broker's channel is down (%s)", exc)
                await self._reload(subscription)
                continue
            if payload is None:  # closed
                return
            notice = revocation.decode(payload)
            if notice is not None:
                self.apply(notice.heard_now())

    async def _reload(self, subscription: Subscription) -> None:
        """Back after an outage: read the record again, for what was announced meanwhile."""
        failures = 0
        while await subscription.wait_live() and not subscription.closed:
            try:
                live = await off_loop(self.broker.revoked_ids)
            except BrokerError as exc:
                failures += 1
                logger.debug("revocations: cannot reload yet (%s)", exc)
                await asyncio.sleep(backoff(failures))
                continue
            self._remember(live)
            logger.debug("revocations: reconnected; %d live revocations", len(live))
            return

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
