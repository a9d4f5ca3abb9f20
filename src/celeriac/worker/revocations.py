"""``Revocations``: the worker's own copy of the revoked task ids and stamped headers, kept
in step by the broker.

Runtime: imports ``brokers.base``, ``messages.revocation``, ``worker.connection`` and the
stdlib. ``start`` subscribes to the broker's ``REVOCATIONS`` topic first and then loads the
live revocations (so none falls in between); from then on ``is_revoked`` answers from
memory, with no broker round trip per message. After an outage of the subscription, the
live revocations are loaded again (what was announced meanwhile is not missed; a terminate
request sent then is). Each id is forgotten when its revocation ends. Terminate requests go
to ``on_terminate``; for a revocation by stamped header, once per running task (``running``)
that carries a revoked stamp.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from celeriac._futures import cancel_and_wait
from celeriac.brokers.base import REVOCATIONS, Broker, Revocation, Subscription
from celeriac.exceptions import BrokerError
from celeriac.messages import revocation
from celeriac.worker.connection import backoff, off_loop

logger = logging.getLogger("celeriac.worker")
SWEEP_EVERY = 60.0  # seconds between sweeps of ended revocations

#: ``on_terminate(task_id, signal_name)``: stop that task if it runs here (the pool's job).
TerminateCallback = Callable[[str, str], None]
#: ``running()``: the tasks running here now, as (task id, its stamps).
RunningTasks = Callable[[], Iterable[tuple[str, Mapping[str, Any]]]]


class Revocations:
    """Revoked task ids with the time each is forgotten; one per worker, on its loop."""

    def __init__(
        self,
        broker: Broker,
        on_terminate: TerminateCallback | None = None,
        *,
        running: RunningTasks | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.broker = broker
        self.on_terminate = on_terminate
        self.running = running
        self._clock = clock
        self._ends: dict[str, float] = {}  # task id -> clock() time it is forgotten
        self._stamp_ends: dict[revocation.Stamp, float] = {}  # a revoked stamp -> the same
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
            await cancel_and_wait(follower)
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

    def is_revoked(self, task_id: str, stamps: Mapping[str, Any] | None = None) -> bool:
        """From memory: must this task be skipped (not run, result REVOKED)? By its id, or,
        given its stamps (``request.stamps``), by one of them."""
        ends = self._ends.get(task_id)
        if ends is not None:
            if ends > self._clock():
                return True
            del self._ends[task_id]
        if not stamps or not self._stamp_ends:
            return False
        stamp = revocation.revoking_stamp(stamps, self._stamp_revoked)
        if stamp is not None:
            logger.info("task %s is revoked by its stamped header %s=%s", task_id, *stamp)
        return stamp is not None

    def _stamp_revoked(self, stamp: revocation.Stamp) -> bool:
        ends = self._stamp_ends.get(stamp)
        return ends is not None and ends > self._clock()

    def ids(self) -> list[str]:
        """The revoked task ids in force (``inspect revoked``)."""
        now = self._clock()
        return [task_id for task_id, at in self._ends.items() if at > now]

    def __contains__(self, task_id: str) -> bool:
        return self.is_revoked(task_id)

    def __len__(self) -> int:
        """The revocations in force (ended ones may linger until the next sweep)."""
        return len(self._ends) + len(self._stamp_ends)

    def apply(self, revocation: Revocation) -> None:
        """Take in an announcement: remember its ids and stamps; terminate if it asks."""
        self._remember(revocation.expires)
        if not revocation.terminate or self.on_terminate is None:
            return
        for task_id in self._to_terminate(revocation.task_ids):
            try:
                self.on_terminate(task_id, revocation.signal)
            except Exception:  # one failed kill must not stop the others, or the watch
                logger.exception("could not terminate revoked task %s", task_id)

    def _to_terminate(self, keys: Iterable[str]) -> list[str]:
        """The revoked ids, and the running tasks that carry one of the revoked stamps."""
        keys = list(keys)
        ids = [key for key in keys if not revocation.is_stamp_key(key)]
        stamps = {s for s in map(revocation.parse_stamp_key, keys) if s is not None}
        if stamps and self.running is not None:
            for task_id, carried in self.running():
                if revocation.revoking_stamp(carried, stamps.__contains__) is not None:
                    ids.append(task_id)
        return ids

    def _remember(self, ends: Mapping[str, float]) -> None:
        """``ends`` are unix times (``time.time()``); kept on this object's clock. A key is
        a task id, or a revoked stamp (``messages.revocation.stamp_key``)."""
        offset = self._clock() - time.time()
        for key, at in ends.items():
            at += offset
            stamp = revocation.parse_stamp_key(key)
            if stamp is not None:
                if at > self._stamp_ends.get(stamp, -math.inf):
                    self._stamp_ends[stamp] = at
            elif at > self._ends.get(key, -math.inf):
                self._ends[key] = at
        self._sweep()

    def _sweep(self) -> None:
        now = self._clock()
        if now - self._swept_at < SWEEP_EVERY:
            return
        self._swept_at = now
        self._ends = {task_id: at for task_id, at in self._ends.items() if at > now}
        self._stamp_ends = {stamp: at for stamp, at in self._stamp_ends.items() if at > now}
