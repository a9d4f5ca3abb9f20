"""The consumer: fetches no more than the pool can take, runs jobs, settles outcomes.

One asyncio loop owns it. It holds at most ``prefetch`` undone messages (fair dispatch:
a long task never strands messages another worker could run), keeps their leases alive
with a heartbeat, and never lets input or a broker hiccup crash the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from celeriac import signals
from celeriac._futures import cancel_and_wait
from celeriac.brokers.base import Broker, DeadLetterReason, Delivery, OutboundMessage
from celeriac.exceptions import (
    BrokerConnectionError,
    BrokerError,
    TaskRevokedError,
    WorkerLostError,
)
from celeriac.trace import Outcome, OutcomeKind
from celeriac.worker import endings, handed_back
from celeriac.worker import request as requests
from celeriac.worker.connection import Outage
from celeriac.worker.execution import (
    HeldJob,
    Refusal,
    acks_failure,
    bury,
    is_expired,
    prepare,
    refuse,
    seconds_to_eta,
    settle,
    short_repr,
    tell_rejected,
)
from celeriac.worker.listeners import Listeners
from celeriac.worker.pools.base import Pool
from celeriac.worker.ratelimit import RateLimits
from celeriac.worker.revocations import Revocations
from celeriac.worker.slots import Slots

logger = logging.getLogger("celeriac.worker")
FETCH_WAIT = 1.0  # seconds a fetch may block: how soon the loop notices a shutdown
RETRY_PAUSE = 1.0  # seconds to wait after a broker error before fetching again


class Consumer:
    def __init__(
        self,
        app: Any,
        broker: Broker,
        pool: Pool,
        queues: Sequence[str],
        *,
        prefetch: int,
        hostname: str,
        rate_limits: RateLimits | None = None,
        revocations: Revocations | None = None,
        outage: Outage | None = None,
        listeners: Listeners | None = None,
        on_stop: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.app, self.broker, self.pool = app, broker, pool
        # A task raised WorkerShutdown/WorkerTerminate: the worker is asked to stop.
        self.on_stop = on_stop
        self.queues = list(queues)
        self.prefetch = max(prefetch, pool.concurrency)
        self.hostname = hostname
        self.rate_limits = rate_limits or RateLimits()
        self.revocations = revocations
        # The broker connection's state: one line when lost, one when back, the backoff.
        self.outage = outage or Outage(type(broker).__name__)
        # Observers of each task's life (events, metrics), told from this loop.
        self.listeners = listeners or Listeners()
        self.held: dict[int, Delivery] = {}  # every unsettled message, for the heartbeat
        self.started: set[int] = set()  # held messages whose job is running in the pool
        self.settling: set[int] = set()  # held messages whose job is over, being settled
        self.running: dict[str, HeldJob] = {}  # task id -> its running job
        self.started_at: dict[str, float] = {}  # task id -> when its job started (unix time)
        self.terminating: dict[str, int] = {}  # task id -> the signal a revoke stops it with
        self._slots = Slots(pool.concurrency)  # resized by remote control (pool_grow)
        self._room = asyncio.Event()  # set whenever a held message is released
        self._fetching = True
        self._stopping = asyncio.Event()  # ends a pause between fetch attempts at once
        self._tasks: set[asyncio.Task[Any]] = set()
        self._fetched_from = list(self.queues)  # the queues of the last fetch

    # -- lifecycle --------------------------------------------------------------------------
    async def run(self) -> None:
        """Fetch and dispatch until ``stop_fetching``; the heartbeat runs alongside."""
        heartbeat = asyncio.create_task(self._heartbeat(), name="celeriac-heartbeat")
        try:
            await self._fetch_loop()
            try:
                await self.broker.stop_fetching()
            except BrokerError as exc:  # what it could not give back returns with the link
                logger.warning("could not give back unfetched messages: %s", exc)
        finally:
            self._room.set()
            if not self.held:
                await cancel_and_wait(heartbeat)
            else:
                self._spawn(self._stop_heartbeat_when_idle(heartbeat))

    def stop_fetching(self) -> None:
        self._fetching = False
        self._room.set()
        self._stopping.set()

    async def wait_idle(self, timeout: float | None) -> bool:
        """Wait for every held message to be settled; False when ``timeout`` ran out."""
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        while self.held:
            remaining = None if deadline is None else deadline - asyncio.get_running_loop().time()
            if remaining is not None and remaining <= 0:
                return False
            self._room.clear()
            try:
                await asyncio.wait_for(self._room.wait(), remaining)
            except asyncio.TimeoutError:
                return False
        return True

    async def give_back(self, *, running_too: bool) -> int:
        """Requeue held messages not started yet (and, for a cold stop, running ones)."""
        returned = 0
        for key, delivery in list(self.held.items()):
            if key in self.started and not running_too:
                continue
            try:
                returned += bool(await delivery.requeue())
            except BrokerError as exc:
                logger.error("could not give back %s: %s", delivery.message_id, exc)
            self._release(delivery)
        return returned

    def resize(self, concurrency: int, prefetch: int) -> None:
        """The pool was resized: run up to ``concurrency`` jobs, hold up to ``prefetch``."""
        self._slots.resize(concurrency)
        self.prefetch = max(prefetch, concurrency)
        self._room.set()

    # -- fetching and running ---------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        while self._fetching:
            if self.queues != self._fetched_from:  # remote control changed them
                await self._queues_changed()
            if not self.queues:  # every queue was cancelled: wait for one to be added
                await self._pause(FETCH_WAIT)
                continue
            free = self.prefetch - len(self.held) + len(self.settling)
            if free <= 0:
                self._room.clear()
                await self._room.wait()
                continue
            try:
                deliveries = await self.broker.fetch(self.queues, free, FETCH_WAIT)
            except BrokerConnectionError as exc:
                wait = self.outage.failed(exc)  # logs the outage once, not every attempt
                if wait is None:
                    return  # no more attempts allowed: the worker is stopping
                await self._pause(wait)
                continue
            except BrokerError as exc:
                logger.error("fetching from %s failed: %s", self.queues, exc)
                await self._pause(RETRY_PAUSE)  # back off, then try again
                continue
            if self.outage.down:
                self.outage.restored()
            for delivery in deliveries:
                self.held[id(delivery)] = delivery
                self._spawn(self._handle(delivery))
            if deliveries and self.pool.runs_on_loop:
                # Let the jobs start before the next fetch is written: on an idle worker
                # the body starts 0.1 ms sooner. (A pool thread would only take turns on
                # the GIL with the loop here, so the other pools fetch at once.)
                await asyncio.sleep(0)
            await self._end_handed_back()
        await self._end_handed_back()  # dead-lettered by the last fetches

    async def _end_handed_back(self) -> None:
        """The broker moved messages to the dead letters by itself (a lease that ran out at
        the delivery limit): end their calls, so nothing waits on them forever."""
        letters = self.broker.take_dead_lettered()
        if not letters:
            return
        ended = await asyncio.to_thread(handed_back.end_all, self.app, letters, self.hostname, self)
        for job, outcome in ended:
            self.listeners.finished(job, outcome)

    async def _queues_changed(self) -> None:
        """Give back what the broker read ahead (it may come from a queue no longer
        consumed); the next fetch reads from the new queues."""
        self._fetched_from = list(self.queues)
        try:
            await self.broker.stop_fetching()
        except BrokerError as exc:  # what it could not give back returns with the link
            logger.warning("could not give back unfetched messages: %s", exc)

    async def _pause(self, seconds: float) -> None:
        """Wait before the next fetch attempt; a shutdown ends the wait."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, delivery: Delivery) -> None:
        self.held.pop(id(delivery), None)
        self.started.discard(id(delivery))
        self.settling.discard(id(delivery))
        self._room.set()

    def _ran(self, delivery: Delivery) -> None:
        """Its job is over (only its outcome is still being settled): room to fetch."""
        if id(delivery) in self.held:
            self.settling.add(id(delivery))
            self._room.set()

    async def _handle(self, delivery: Delivery) -> None:
        prepared: HeldJob | Refusal | None = None
        try:
            prepared = prepare(self.app, delivery, self.hostname, consumer=self)
            if not isinstance(prepared, HeldJob):
                await refuse(self.app, prepared)
                return
            logger.info("Task %s[%s] received", prepared.task.name, prepared.request.id)
            prepared.custom = requests.for_job(prepared, self.hostname)
            if self._revoked(prepared):
                await self._discard_revoked(prepared, terminated=False)
                return
            early = seconds_to_eta(prepared.request)
            if early > 0:  # sent before its eta: it waits in the broker, never in a slot
                await self._postpone(prepared, early, "not due until its eta")
                return
            # An expired message is discarded by the pool without running: no token needed.
            expired = is_expired(prepared.request)
            wait = 0.0 if expired else self._local_rate_limit_wait(prepared.task)
            if wait is None:  # the bucket every worker shares, in the broker
                wait = await self._cluster_rate_limit_wait(prepared.task)
            if wait > 0:
                await self._postpone(prepared, wait, "rate limited")
                return
            if not expired:  # as in Celery, a revoked or expired task is not "received";
                # nor is one postponed by its rate limit until it comes back due (once).
                if signals.task_received.has_receivers:
                    signals.task_received.send(sender=self, request=prepared.request)
                self.listeners.received(prepared)
            async with self._slots:
                if id(delivery) not in self.held:
                    return  # given back while it waited for a slot (shutdown)
                if self._revoked(prepared):  # revoked while it waited for a slot
                    await self._discard_revoked(prepared, terminated=False)
                    return
                self.started.add(id(delivery))
                self.running[str(prepared.request.id)] = prepared
                self.started_at[str(prepared.request.id)] = time.time()
                self.listeners.started(prepared)
                try:
                    outcome = await self._execute(prepared)
                finally:
                    self.running.pop(str(prepared.request.id), None)
                    self.started_at.pop(str(prepared.request.id), None)
                    self.terminating.pop(str(prepared.request.id), None)
                    self._ran(delivery)
            # Settled outside the slot, and no longer counted against the prefetch: the
            # next message is fetched and started while this one's ack is on its way.
            if outcome is not None:
                await self._settle(prepared, outcome)
                self._maybe_stop(outcome)  # once acked: a cold stop must not give it back
                await self._tell(prepared, outcome)
        except Exception as exc:  # the worker must outlive any one message
            # Settled before its room is given back: never held unsettled outside the count.
            await bury(delivery, exc, prepared if isinstance(prepared, HeldJob) else None)
        finally:
            self._release(delivery)

    def _local_rate_limit_wait(self, task: Any) -> float | None:
        """Seconds ``task`` must wait for this worker's rate limit bucket; None when its
        limit is the cluster's (``rate_limit_scope='cluster'``): see
        ``_cluster_rate_limit_wait``. (Apart, so that most tasks pay no coroutine for it.)"""
        if self.rate_limits.disabled or task.resolve("rate_limit_scope") != "cluster":
            return self.rate_limits.wait_for(task)
        return None

    async def _cluster_rate_limit_wait(self, task: Any) -> float:
        """Seconds ``task`` must wait for the bucket every worker shares in the broker
        (``rate_limit_scope='cluster'``); this worker's own when that is out of reach."""
        rate = self.rate_limits.rate_of(task)
        if rate is None:
            return 0.0
        try:
            return await self.broker.acquire(f"task:{task.name}", rate, 1.0)
        except BrokerError as exc:  # the shared bucket is out of reach: fall back to ours
            logger.warning("cluster rate limit of %s unavailable: %s", task.name, exc)
            return self.rate_limits.wait_for(task)

    def _revoked(self, job: HeldJob) -> bool:
        revocations, request = self.revocations, job.request
        return revocations is not None and revocations.is_revoked(str(request.id), request.stamps)

    async def _discard_revoked(
        self, job: HeldJob, *, terminated: bool, acked: bool = False
    ) -> None:
        """A revoked task is not run (or was stopped): record REVOKED, ack the message."""
        signum = self.terminating.pop(job.id, None) if terminated else None
        # Off the event loop: the result store and followup publishes block.
        outcome = await asyncio.to_thread(
            endings.revoked, job, terminated=terminated, signum=signum
        )
        self.listeners.finished(job, outcome)
        if not acked:
            await job.delivery.ack()

    async def _postpone(self, job: HeldJob, wait: float, why: str) -> None:
        """Over its rate limit, or ahead of its eta: back to the broker, due in ``wait``
        seconds. Publish first, then ack: a crash in between runs it twice, never loses it."""
        delivery = job.delivery
        priority = job.request.delivery_info.get("priority") or delivery.priority
        logger.debug("Task %s[%s] %s: due in %.2fs", job.task.name, job.request.id, why, wait)
        await self.broker.publish_async(
            OutboundMessage(delivery.queue, delivery.payload, delivery.message_id, priority, wait)
        )
        await delivery.ack()

    async def _execute(self, job: HeldJob) -> Outcome | None:
        """Run the job in the pool; its outcome, or None when it was dealt with here."""
        # task_acks_late=False (Celery's default, not ours): the message leaves the broker
        # before the body runs, so a crash loses it; a retry is still re-published.
        early = not job.task.resolve("acks_late")
        if early:
            await job.delivery.ack()
            requests.settled(job)
        if job.custom is not None and (pid := self.pool.job_pid(job.id)) is not None:
            requests.accepted(job, pid)  # here, in-process; prefork's once a child takes it
        try:
            outcome = await self.pool.run(job)
        except WorkerLostError as exc:
            await self._worker_lost(job, exc, acked=early)
            return None
        except TaskRevokedError:  # revoked with terminate=True while it ran
            await self._discard_revoked(job, terminated=True, acked=early)
            return None
        self._log_outcome(job, outcome)
        self.listeners.finished(job, outcome)
        if not early:
            return outcome
        self._maybe_stop(outcome)  # (acked already)
        if outcome.kind is OutcomeKind.REJECT:  # acked already: it will not run again
            await tell_rejected(job, outcome)
        if outcome.kind is OutcomeKind.RETRY and outcome.retry is not None:
            try:
                await asyncio.to_thread(outcome.retry.sig.apply_async)
            except BrokerError as exc:
                logger.error(
                    "Task %s[%s]: could not publish its retry: %s",
                    job.task.name, job.request.id, exc,
                )  # fmt: skip
        await self._tell(job, outcome)
        return None

    def _maybe_stop(self, outcome: Outcome) -> None:
        """The task raised ``WorkerShutdown``/``WorkerTerminate``: ask the worker to stop."""
        if outcome.kind is OutcomeKind.SHUTDOWN and self.on_stop is not None:
            assert outcome.exc is not None
            self.on_stop(outcome.exc)

    async def _settle(self, job: HeldJob, outcome: Outcome) -> None:
        try:
            if await settle(job, outcome):
                requests.settled(job)
        except BrokerError as exc:  # the lease runs out and the message comes back
            logger.error("Task %s[%s]: could not settle: %s", job.task.name, job.request.id, exc)

    @staticmethod
    async def _tell(job: HeldJob, outcome: Outcome) -> None:
        """Its Task.Request's hooks, once the message is settled (off the loop: user code)."""
        if job.custom is not None:
            await asyncio.to_thread(requests.finished, job, outcome)

    async def _worker_lost(self, job: HeldJob, exc: WorkerLostError, *, acked: bool) -> None:
        """The process running the job died: retry it (``retry_on_worker_lost``), redeliver
        it (bounded), or record the failure. Its Task.Request hears of it last."""
        await self._settle_lost(job, exc, acked=acked)
        requests.settled(job)
        if job.custom is not None:
            await asyncio.to_thread(requests.lost, job, exc)

    async def _settle_lost(self, job: HeldJob, exc: WorkerLostError, *, acked: bool) -> None:
        delivery, task = job.delivery, job.task
        logger.error("Task %s[%s]: %s", task.name, job.request.id, exc)
        # As Celery: sent again as retry() would; once max_retries is reached, it fails.
        retrying = bool(task.resolve("retry_on_worker_lost"))
        exhausted = retrying and endings.retries_exhausted(job)
        if retrying and not exhausted:
            retried = await asyncio.to_thread(endings.retried_after_loss, job, exc)
            if retried is not None:  # None: the retry could not be sent (logged)
                if not acked:
                    await delivery.ack()
                self.listeners.finished(job, retried)
                return
        if not acked and not exhausted and task.resolve("reject_on_worker_lost"):
            if delivery.delivery_count < self.broker.delivery_limit:
                await delivery.requeue(count_delivery=True)
                return
            detail = f"{exc} (on delivery {delivery.delivery_count})"
            await delivery.dead_letter(DeadLetterReason.WORKER_LOST, detail)
        elif not acked and not acks_failure(job, exc):
            await delivery.dead_letter(DeadLetterReason.FAILED, str(exc))
        elif not acked:
            await delivery.ack()
        # The task will not run again: record why, so result.get() does not wait forever,
        # and tell its errbacks, chain and chord (off the event loop: these block).
        self.listeners.finished(job, await asyncio.to_thread(endings.failed, job, exc))

    @staticmethod
    def _log_outcome(job: HeldJob, outcome: Outcome) -> None:
        if outcome.kind is OutcomeKind.SUCCESS and logger.isEnabledFor(logging.INFO):
            retval = outcome.retval if isinstance(outcome.retval, str) else repr(outcome.retval)
            retval = short_repr(retval, job.task.resultrepr_maxsize)  # (already a str)
            logger.info(
                "Task %s[%s] succeeded in %.6fs: %s",
                job.task.name, job.request.id, outcome.runtime, retval,
            )  # fmt: skip

    # -- leases -----------------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Renew the lease of every held message, three times per lease period."""
        interval = self.broker.lease_seconds / 3
        while True:
            await asyncio.sleep(interval)  # the heartbeat period
            if not self.held:
                continue
            try:
                lost = await self.broker.extend(list(self.held.values()))
            except BrokerConnectionError as exc:  # the fetch loop reports the outage
                logger.debug("lease heartbeat failed: %s", exc)
                continue
            except BrokerError as exc:
                logger.warning("lease heartbeat failed: %s", exc)
                continue
            # A message settled while the extend was on its way is not lost: it is done.
            # Nor is one being settled: its ack may have landed first, and a settle that
            # finds the lease lost says so itself.
            lost = [d for d in lost if id(d) in self.held and id(d) not in self.settling]
            for delivery in lost:
                logger.warning(
                    "lease of message %s was lost (the worker was unreachable for longer "
                    "than the lease); another worker may run it",
                    delivery.message_id,
                )

    async def _stop_heartbeat_when_idle(self, heartbeat: asyncio.Task[None]) -> None:
        await self.wait_idle(None)
        await cancel_and_wait(heartbeat)
