"""``prefork`` pool: task bodies in forked child processes, one job per child at a time.

Owns the children's lives on the worker's event loop: fork, hand out jobs over a pipe,
notice a death the moment it happens (each child's pipe and process sentinel are
watched with ``loop.add_reader``, never polled), replace dead and retired children,
stop them. What runs inside a child is ``pools.child``. Imports the seam,
``worker.execution``, ``worker.timelimits``, ``pools.child`` and leaves; never the consumer.

Time limits: the child raises ``SoftTimeLimitExceeded`` in the body at the soft limit
(SIGALRM, see ``pools.child``); the hard limit is the parent's. Its clock starts when the
job is handed to the (idle, waiting) child; when it runs out the child is SIGKILLed and
replaced, the job's FAILURE (``TimeLimitExceeded``) is recorded here, and ``run`` returns
that outcome: a time out is the task's result, not a lost worker, so the message is
settled as usual.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import multiprocessing
import os
import signal
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from celeriac import signals
from celeriac.exceptions import TaskRevokedError, TimeLimitExceeded, WorkerLostError
from celeriac.trace import Outcome
from celeriac.worker import endings, timelimits
from celeriac.worker import request as requests
from celeriac.worker.execution import HeldJob, outcome_from_wire
from celeriac.worker.pools import child
from celeriac.worker.pools.base import Pool

logger = logging.getLogger("celeriac.worker.prefork")

KILL_WAIT = 5.0  # seconds a SIGKILLed child may take to be reaped before we give up on it
REAP_TRIES = 40  # exit-status checks after a child's pipes closed (see _reap)
HANDOFFS = 3  # children a job may be handed to that die before taking it


class _NotStarted(Exception):
    """The child died before it took the job: no task code ran, another child may run it."""


class _TimedOut(Exception):
    """The child was killed at the job's hard time limit (seconds in ``args[0]``)."""


class _State(enum.Enum):
    STARTING = "starting"  # forked; worker_process_init has not finished
    IDLE = "idle"  # waiting for a job (it is in the idle queue)
    BUSY = "busy"  # running a job
    LEAVING = "leaving"  # retiring or asked to exit: takes no more jobs
    GONE = "gone"  # dead, reaped, pipes closed


_SERVING = (_State.STARTING, _State.IDLE, _State.BUSY)


@dataclass(eq=False)
class _Child:
    process: BaseProcess
    conn: Connection  # the parent's end of this child's duplex pipe
    pid: int
    state: _State = _State.STARTING
    reply: asyncio.Future[dict[str, Any]] | None = None  # the running job's outcome
    accepted: bool = False  # known once it died: it had read its job, task code may have run
    taken: Any = None  # shared counter: the jobs it read (see child.main)
    handed: int = 0  # the jobs handed to it
    jobs: int = 0  # jobs finished
    job: HeldJob | None = None  # the job it holds, from the hand-off to its reply
    limits: timelimits.Limits = (None, None)  # that job's (hard, soft) time limits
    timers: list[asyncio.TimerHandle] = field(default_factory=list)  # its limits' clocks
    killed_at_limit: bool = False  # SIGKILLed at the hard time limit; its reply says so
    terminated: bool = False  # killed by a revoke with terminate=True
    term_allowed: Any = None  # shared byte: set before we SIGTERM it (see child._on_sigterm)
    exited: bool = False  # its pipe or sentinel reported the end; readers removed
    alive_timer: asyncio.TimerHandle | None = None  # proc_alive_timeout, until READY
    gone: asyncio.Event = field(default_factory=asyncio.Event)


class PreforkPool(Pool):
    name = "prefork"

    #: Graceful stop: seconds children get to exit by themselves before being killed.
    join_timeout = 10.0

    def __init__(
        self,
        app: Any,
        concurrency: int,
        *,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        hostname: str | None = None,
        proc_alive_timeout: float | None = None,
    ) -> None:
        super().__init__(app, concurrency)
        self.hostname = hostname
        # Seconds a new child has to say READY (worker_process_init included); None: no limit.
        self.proc_alive_timeout = (
            proc_alive_timeout or None
        )  # the sender of worker_process_init/_shutdown in children
        self.max_tasks_per_child = _limit("max_tasks_per_child", max_tasks_per_child)
        self.max_memory_per_child = _limit("max_memory_per_child", max_memory_per_child)
        self._context = multiprocessing.get_context("fork")
        self._children: dict[int, _Child] = {}  # pid -> every child not yet reaped
        self._idle: asyncio.Queue[_Child | None] | None = None  # None: the pool stopped
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self._start_failures = 0  # consecutive children that died before doing any work
        self._respawns: set[asyncio.TimerHandle] = set()
        self._forked = 0

    # -- the seam ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._loop is not None:
            raise RuntimeError("the prefork pool was already started")
        self._loop = asyncio.get_running_loop()
        self._idle = asyncio.Queue()
        for _ in range(self.concurrency):
            self._spawn_or_retry()

    async def run(self, job: HeldJob) -> Outcome:
        if self._loop is None:
            raise RuntimeError("the pool is not started")
        delivery = job.delivery
        hard, soft = timelimits.limits_for(job)
        tell = requests.wants_accepted(job)  # only then must the child say STARTED
        order = child.dumps((
            delivery.payload, delivery.queue, delivery.delivery_count, job.request.hostname,
            soft, tell,
        ))  # fmt: skip
        for _ in range(HANDOFFS):
            kid = await self._take_idle()
            try:
                kid.conn.send_bytes(order)
            except OSError:  # it died since it went idle (EPIPE): the job never reached it
                self._on_exit(kid)
                continue
            kid.state = _State.BUSY
            kid.handed += 1
            kid.reply = self._loop.create_future()
            kid.job, kid.limits, kid.terminated = job, (hard, soft), False
            self._start_clocks(kid)  # it is idle, waiting: it reads the job at once
            try:
                # Cancelling this await leaves the child running; its reply is dropped.
                wire = await kid.reply
            except _NotStarted:  # it died with the job unread: give it to another child
                logger.debug("prefork child %d died before taking a job: retrying", kid.pid)
                continue
            except _TimedOut as out:
                exc = TimeLimitExceeded(out.args[0])
                return await asyncio.to_thread(endings.failed, job, exc)
            return outcome_from_wire(self.app, wire)
        raise WorkerLostError(f"{HANDOFFS} prefork children died before taking the job")

    async def stop(self, *, terminate: bool) -> None:
        """Graceful: every child exits after its current job (killed after
        ``join_timeout``). ``terminate``: SIGKILL now; running jobs raise WorkerLostError."""
        if self._idle is None:
            return
        self._close()
        kids = list(self._children.values())
        if terminate:
            self.kill_now()
        else:
            for kid in kids:
                self._ask_to_exit(kid)
            if not await _all_gone(kids, self.join_timeout):
                logger.warning(
                    "prefork children still running %ss after the stop request: killing them",
                    self.join_timeout,
                )
                self.kill_now()
        if not await _all_gone(kids, KILL_WAIT):
            for kid in kids:
                if not kid.gone.is_set():
                    self._abandon(kid)

    def terminate_job(self, task_id: str, signum: int) -> bool:
        for kid in self._children.values():
            if kid.job is not None and kid.job.request.id == task_id and not kid.exited:
                kid.terminated = True
                kid.term_allowed.value = 1  # a SIGTERM from us, not the group's: obey it
                logger.warning("Task %s: terminating child %d (revoked)", task_id, kid.pid)
                os.kill(kid.pid, signum)
                return True
        return False

    def resize(self, concurrency: int) -> None:
        """Fork the children a grow adds now; a shrink asks idle children to exit first,
        then busy ones after their current job (none is interrupted)."""
        if self._loop is None or self._stopping:
            raise RuntimeError("the prefork pool is not running: it cannot be resized")
        super().resize(concurrency)
        serving = [k for k in self._children.values() if k.state in _SERVING]
        for _ in range(concurrency - len(serving)):
            self._spawn_or_retry()
        order = {_State.IDLE: 0, _State.STARTING: 1, _State.BUSY: 2}
        extra = max(0, len(serving) - concurrency)  # (a negative slice would drop children)
        for kid in sorted(serving, key=lambda k: order[k.state])[:extra]:
            logger.info("prefork child %d leaves: the pool shrinks", kid.pid)
            self._ask_to_exit(kid)

    def restart(self) -> None:
        """Replace every child: new ones fork now (from the worker as it is now, with the
        modules it just imported or reloaded); the old ones take no more jobs and exit
        after the job they run."""
        if self._loop is None or self._stopping:
            raise RuntimeError("the prefork pool is not running: it cannot be restarted")
        old = [k for k in self._children.values() if k.state in _SERVING]
        for kid in old:
            self._ask_to_exit(kid)
        for _ in range(self.concurrency):
            self._spawn_or_retry()
        logger.info("prefork pool restarted: %d children replaced", len(old))

    def job_pid(self, task_id: str) -> int | None:
        for kid in self._children.values():
            if kid.job is not None and kid.job.request.id == task_id:
                return kid.pid
        return None

    def kill_now(self) -> None:
        """SIGKILL every child at once (cold or immediate stop); no replacements follow."""
        self._close()
        for kid in list(self._children.values()):
            if kid.process.exitcode is None:
                kid.process.kill()

    def info(self) -> dict[str, Any]:
        serving = _SERVING
        return {
            **super().info(),
            "processes": sorted(k.pid for k in self._children.values() if k.state in serving),
            "max_tasks_per_child": self.max_tasks_per_child,
            "max_memory_per_child": self.max_memory_per_child,
        }

    def _close(self) -> None:
        """From now on: no new children, and run() raises instead of waiting for one."""
        first, self._stopping = not self._stopping, True
        if first and self._idle is not None:
            for handle in self._respawns:
                handle.cancel()
            self._respawns.clear()
            self._idle.put_nowait(None)  # wakes every run() waiting for a child, now and later

    # -- handing out jobs -------------------------------------------------------------------
    async def _take_idle(self) -> _Child:
        assert self._idle is not None
        while True:
            kid = await self._idle.get()
            if kid is None:
                self._idle.put_nowait(None)  # leave the marker for the next waiter
                raise WorkerLostError("the prefork pool stopped before the job could start")
            if kid.state is _State.IDLE and not kid.exited:
                return kid
            # Otherwise it died or left while queued; its replacement queues itself.

    def _on_readable(self, kid: _Child) -> None:
        try:
            message = kid.conn.recv()
        except (EOFError, OSError):  # its end of the pipe closed: it exited (or broke it)
            self._on_exit(kid)
            return
        self._on_message(kid, message)

    def _on_message(self, kid: _Child, message: Any) -> None:
        tag = message[0] if isinstance(message, tuple) and message else None
        if tag == child.READY and kid.alive_timer is not None:
            kid.alive_timer.cancel()
            kid.alive_timer = None
        if tag == child.READY and kid.state is _State.STARTING:
            kid.state = _State.IDLE
            assert self._idle is not None
            self._idle.put_nowait(kid)
        elif tag == child.READY and kid.state is _State.LEAVING:
            pass  # told to exit while starting: it reads that order next
        elif tag == child.STARTED and kid.reply is not None:
            if kid.job is not None:  # its Task.Request's on_accepted, with the child's pid
                requests.accepted(kid.job, kid.pid)
        elif tag == child.DONE and kid.reply is not None:
            self._on_done(kid, message[1], message[2])
        else:  # a protocol breach: this child cannot be trusted with another job
            logger.error("prefork child %d sent %r unexpectedly: killing it", kid.pid, tag)
            kid.process.kill()

    def _on_done(self, kid: _Child, wire: dict[str, Any], retiring: str | None) -> None:
        reply, kid.reply = kid.reply, None
        assert reply is not None and self._idle is not None
        self._stop_clocks(kid)
        kid.accepted = False
        kid.jobs += 1
        self._start_failures = 0  # children do work again: start-up is healthy
        if retiring is not None:
            # It exits by itself after this reply; its replacement starts now, so the
            # pool is back at full size before the next job is handed out.
            logger.info("prefork child %d retires: %s", kid.pid, retiring)
            kid.state = _State.LEAVING
            self._spawn_or_retry()
        elif kid.state is _State.BUSY:
            kid.state = _State.IDLE
            self._idle.put_nowait(kid)
        if not reply.done():  # done: the caller was cancelled; the outcome goes nowhere
            reply.set_result(wire)

    # -- time limits ------------------------------------------------------------------------
    def _start_clocks(self, kid: _Child) -> None:
        """The job's task code may run from now on: time its limits (none: no timer)."""
        assert self._loop is not None
        hard, soft = kid.limits
        if soft is not None:  # the child raises; the parent only logs it
            kid.timers.append(self._loop.call_later(soft, self._on_soft_limit, kid, soft))
        if hard is not None:
            kid.timers.append(self._loop.call_later(hard, self._on_hard_limit, kid, hard))

    def _stop_clocks(self, kid: _Child) -> None:
        for timer in kid.timers:
            timer.cancel()
        kid.timers.clear()
        kid.job, kid.limits = None, (None, None)

    def _on_soft_limit(self, kid: _Child, soft: float) -> None:
        if kid.job is not None:
            logger.warning(
                "Task %s[%s] soft time limit (%s) exceeded",
                kid.job.task.name, kid.job.request.id, timelimits.show(soft),
            )  # fmt: skip
            requests.timed_out(kid.job, True, soft)

    def _on_hard_limit(self, kid: _Child, hard: float) -> None:
        """Kill the child running past its job's hard limit; ``_bury`` replaces it and
        answers ``run`` with ``_TimedOut``."""
        job = kid.job
        if job is None or kid.exited or kid.state is _State.GONE:
            return
        if kid.conn.poll(0):
            return  # its reply is written, not read yet: it finished in time
        kid.killed_at_limit = True
        logger.error(
            "Task %s[%s] hard time limit (%s) exceeded; child %d killed",
            job.task.name, job.request.id, timelimits.show(hard), kid.pid,
        )  # fmt: skip
        kid.process.kill()
        assert self._loop is not None
        # SIGKILL ends a process unless it is stuck in the kernel: then stop waiting for it.
        self._loop.call_later(KILL_WAIT, self._abandon_if_alive, kid)

    def _abandon_if_alive(self, kid: _Child) -> None:
        if not kid.gone.is_set():
            self._abandon(kid)

    # -- children coming and going ----------------------------------------------------------
    def _spawn_or_retry(self) -> None:
        if self._stopping:
            return
        try:
            self._spawn()
        except OSError as exc:  # fork refused (memory, process limit): try again later
            logger.error("could not start a prefork child: %s", exc)
            self._respawn_later()

    def _spawn(self) -> None:
        assert self._loop is not None
        signals.worker_before_create_process.send(sender=self)
        ours, theirs = self._context.Pipe(duplex=True)
        # The child closes what it inherits of the other children (see child._detach).
        inherited: list[Connection | int] = [ours]
        for other in self._children.values():
            inherited += [other.conn, other.process.sentinel]
        self._forked += 1
        term_allowed = self._context.RawValue("b", 0)  # shared memory, inherited by the fork
        taken = self._context.RawValue("q", 0)
        process = self._context.Process(
            target=child.main,
            args=(
                self.app,
                theirs,
                inherited,
                self.max_tasks_per_child,
                self.max_memory_per_child,
                term_allowed,
                taken,
                self.hostname,
            ),
            name=f"ForkPoolWorker-{self._forked}",
            daemon=True,  # if the worker dies without stop(), multiprocessing ends them
        )
        try:
            with _forking():
                process.start()
        except BaseException:
            ours.close()
            raise
        finally:
            # Only the child holds its end now, so its exit reads as EOF on ours.
            theirs.close()
        assert process.pid is not None
        kid = _Child(process, ours, process.pid, term_allowed=term_allowed, taken=taken)
        self._children[kid.pid] = kid
        self._loop.add_reader(ours.fileno(), self._on_readable, kid)
        self._loop.add_reader(process.sentinel, self._on_exit, kid)
        if self.proc_alive_timeout is not None:
            kid.alive_timer = self._loop.call_later(
                self.proc_alive_timeout, self._on_start_timeout, kid
            )
        logger.debug("started prefork child %d", kid.pid)

    def _on_start_timeout(self, kid: _Child) -> None:
        """worker_proc_alive_timeout passed before the child said READY: kill it; its
        death is handled as any failed start (replaced after a pause)."""
        kid.alive_timer = None
        if kid.exited or kid.state is _State.GONE:
            return
        logger.error(
            "Timed out waiting for UP message from prefork child %d: it did not finish "
            "starting within %ss (worker_proc_alive_timeout); killing it",
            kid.pid, self.proc_alive_timeout,
        )  # fmt: skip
        kid.process.kill()

    def _on_exit(self, kid: _Child) -> None:
        """Its pipe or its sentinel closed: the child exited (or is breaking the protocol)."""
        if kid.exited:
            return
        kid.exited = True
        assert self._loop is not None
        # Both descriptors stay readable for good: keep them, and the loop would spin.
        self._loop.remove_reader(kid.conn.fileno())
        self._loop.remove_reader(kid.process.sentinel)
        # A reply written just before the exit (a retiring child) still counts.
        while kid.conn.poll(0):
            try:
                message = kid.conn.recv()
            except (EOFError, OSError):
                break
            self._on_message(kid, message)
        self._reap(kid, 0)

    def _reap(self, kid: _Child, attempt: int) -> None:
        """Collect the exit status, then bury the child.

        A process closes its descriptors a moment before its status can be collected, so
        the first look may come too early: look again shortly (a bounded few times). A
        child still running then has closed its own pipes: it is killed.
        """
        assert self._loop is not None
        if kid.state is _State.GONE:  # abandoned meanwhile (see stop)
            return
        code = kid.process.exitcode
        if code is None and attempt < REAP_TRIES:
            if attempt == 0:
                kid.process.kill()
            self._loop.call_later(0.002 * (attempt + 1), self._reap, kid, attempt + 1)
            return
        self._bury(kid, code)

    def _bury(self, kid: _Child, code: int | None) -> None:
        was = kid.state
        if was is _State.GONE:
            return
        kid.state = _State.GONE
        if kid.alive_timer is not None:
            kid.alive_timer.cancel()
            kid.alive_timer = None
        self._children.pop(kid.pid, None)
        kid.conn.close()
        if code is not None:
            kid.process.close()  # releases the sentinel descriptor
        kid.gone.set()
        # Whether it had read the job it held: it counts each one before running it.
        kid.accepted = kid.reply is not None and kid.taken.value == kid.handed
        hard = kid.limits[0]
        self._stop_clocks(kid)
        reply, kid.reply = kid.reply, None
        if reply is not None and not reply.done():  # done: the caller stopped waiting
            if kid.killed_at_limit:
                reply.set_exception(_TimedOut(hard))
            elif kid.terminated:
                reply.set_exception(TaskRevokedError("revoked and terminated"))
            elif kid.accepted:
                text = f"prefork child {kid.pid} died running the task: {_describe(code)}"
                reply.set_exception(WorkerLostError(text))
            else:
                reply.set_exception(_NotStarted())
        if not self._stopping and was is not _State.LEAVING:  # leavers were replaced already
            self._replace(kid, was, code)

    def _replace(self, kid: _Child, was: _State, code: int | None) -> None:
        """Start the successor of a dead child: at once, unless it died before doing any
        work (a broken start-up would otherwise make the worker fork in a loop)."""
        if was is _State.STARTING or (kid.jobs == 0 and not kid.accepted):
            self._start_failures += 1
            what = "failed to start" if was is _State.STARTING else "died before its first job"
            logger.error("prefork child %d %s: %s", kid.pid, what, _describe(code))
            self._respawn_later()
            return
        if not kid.accepted:
            logger.warning("idle prefork child %d died: %s", kid.pid, _describe(code))
        self._spawn_or_retry()

    def _respawn_later(self) -> None:
        """Start a child after a pause that grows with each consecutive failure."""
        assert self._loop is not None
        delay = min(0.05 * 2 ** max(self._start_failures, 1), 10.0)

        def respawn() -> None:
            self._respawns.discard(handle)
            self._spawn_or_retry()

        handle = self._loop.call_later(delay, respawn)
        self._respawns.add(handle)

    def _ask_to_exit(self, kid: _Child) -> None:
        """A child reads the exit order after its current job (if any) and then exits."""
        if kid.state in (_State.STARTING, _State.IDLE, _State.BUSY):
            kid.state = _State.LEAVING
            with contextlib.suppress(OSError):  # already dying: its sentinel tells us
                kid.conn.send_bytes(child.dumps(None))

    def _abandon(self, kid: _Child) -> None:
        """Give up on a child SIGKILL did not end (stuck in the kernel): free its pipe and
        release the caller; multiprocessing reaps it whenever it finally dies."""
        logger.error("prefork child %d did not die after SIGKILL: abandoning it", kid.pid)
        if not kid.exited:
            kid.exited = True
            assert self._loop is not None
            self._loop.remove_reader(kid.conn.fileno())
            self._loop.remove_reader(kid.process.sentinel)
        self._bury(kid, None)


def _limit(name: str, value: int | None) -> int | None:
    """Celery treats 0 and None alike: no limit."""
    if value is not None and value < 0:
        raise ValueError(f"{name} must be a positive number or None, not {value!r}")
    return value or None


def _describe(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-code} ({name})"
    return f"exited with code {code}"


@contextlib.contextmanager
def _forking() -> Iterator[None]:
    """Block the stop signals across a fork: one landing in the new child before it has
    reset its handlers would run the parent's handlers there (the child unblocks them)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, child.HELD_SIGNALS)
    try:
        with warnings.catch_warnings():
            # Python 3.12+ warns whenever a process with threads forks. Forking the worker
            # is this pool's design, with the hazard Celery's prefork lives with too (a lock
            # held by another thread at fork time stays held in the child); CPython resets
            # its own locks (logging, imports) after a fork.
            warnings.filterwarnings(
                "ignore", "This process .* is multi-threaded", DeprecationWarning
            )
            yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


async def _all_gone(kids: list[_Child], timeout: float) -> bool:
    """Wait (bounded) until every one of ``kids`` is reaped; False on timeout."""
    waiting = [kid.gone.wait() for kid in kids if not kid.gone.is_set()]
    if not waiting:
        return True
    try:
        await asyncio.wait_for(asyncio.gather(*waiting), timeout)
    except asyncio.TimeoutError:
        return False
    return True
