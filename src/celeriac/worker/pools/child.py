"""What runs inside a prefork child: detach from the parent, then run jobs from a pipe.

Owns the child's side of the pipe protocol (the messages below) and the retire rule
(``max_tasks_per_child``, ``max_memory_per_child``). It runs in a forked copy of the
worker, so it must not touch what the parent owns (the event loop, the broker's async
face, the other children). Imports leaves and ``worker.execution``; never the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import pickle
import signal
from collections.abc import Sequence
from multiprocessing.connection import Connection
from typing import Any

from celeriac import signals, states
from celeriac.exceptions import SoftTimeLimitExceeded
from celeriac.trace import Outcome, OutcomeKind, trace_task
from celeriac.worker import execution
from celeriac.worker.memory import resident_kib

logger = logging.getLogger("celeriac.worker.child")

# The protocol. Parent -> child: ``(payload, queue, delivery_count, hostname, soft, tell)``
# runs a job (``soft``: its soft time limit in seconds, or None; the parent enforces the
# hard one; ``tell``: say STARTED once it is read); ``None`` asks the child to exit.
# Child -> parent: the tuples below. Both ways, pickled by ``dumps``.
READY = "ready"  # (READY,): worker_process_init ran; the child takes jobs from now on
STARTED = "started"  # (STARTED,): the job was read (sent only when the order asks)
DONE = "done"  # (DONE, wire outcome, retire reason or None): one job finished


def dumps(message: Any) -> bytes:
    """A protocol message as bytes for ``Connection.send_bytes``; ``Connection.recv``
    reads it. Plain pickle: what crosses the pipe is plain data, and multiprocessing's
    own pickler (for sockets and pipes) costs a copy of its reducer table on every send."""
    return pickle.dumps(message, pickle.HIGHEST_PROTOCOL)


#: Signals held (blocked) while the parent forks; the child unblocks them once its own
#: handlers are in place, so no signal ever runs the parent's handlers in a child.
HELD_SIGNALS = frozenset({signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP})


def main(
    app: Any,
    conn: Connection,
    inherited: Sequence[Connection | int],
    max_tasks: int | None,
    max_memory_kib: int | None,
    term_allowed: Any,
    taken: Any,
    hostname: str | None = None,
) -> None:
    """The child's whole life. Returning exits the process with status 0.

    ``term_allowed``: a shared byte the parent sets before it sends SIGTERM itself (a
    revoke with ``terminate``); any other SIGTERM is ignored (see ``_on_sigterm``).
    ``taken``: a shared counter of the jobs this child read, which the parent reads when
    the child dies (no task code of a job it did not count can have run).
    ``hostname``: the worker's node name, the sender of the child's signals (as Celery's).
    """
    _detach(inherited, term_allowed)
    app.on_after_fork.send(sender=app)  # Celery sends it first, then worker_process_init
    signals.worker_process_init.send(sender=hostname)
    try:
        conn.send_bytes(dumps((READY,)))
        _serve(app, conn, taken, max_tasks, max_memory_kib)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass  # the parent went away: nobody is left to send work or read replies
    signals.worker_process_shutdown.send(sender=hostname, pid=os.getpid(), exitcode=0)


def _detach(inherited: Sequence[Connection | int], term_allowed: Any) -> None:
    """Stop sharing the parent's signal handling and its pipes to the other children."""
    # The parent's event loop points the signal wakeup fd at its own self-pipe: left as
    # is, a signal received here would run the parent's handlers in the parent.
    signal.set_wakeup_fd(-1)
    # Ctrl-C reaches the whole process group; the parent decides when children stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in HELD_SIGNALS - {signal.SIGINT, signal.SIGTERM}:
        signal.signal(signum, signal.SIG_DFL)  # the parent stops us with SIGKILL
    signal.signal(signal.SIGTERM, lambda signum, frame: _on_sigterm(term_allowed))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, HELD_SIGNALS)
    faulthandler.unregister(signal.SIGUSR1)  # the parent's stack dump: SIGUSR1 ends a child
    signal.signal(signal.SIGUSR1, signal.SIG_DFL)
    # Forget the parent's event loop: its epoll instance is shared with the parent, so a
    # task using that loop here would change what the parent's loop watches.
    asyncio.set_event_loop(None)
    # Holding a sibling's pipe end would hide the parent's exit from that sibling (it
    # would never read EOF); holding its sentinel would only waste a descriptor.
    for item in inherited:
        if isinstance(item, Connection):
            item.close()
        else:
            with contextlib.suppress(OSError):
                os.close(item)


def _on_sigterm(term_allowed: Any) -> None:
    """SIGTERM in a child: die of it if the parent sent it (it set ``term_allowed``
    first: a revoke with ``terminate``); otherwise it was sent to the whole process group
    (systemd's ``KillMode=control-group``, ``kill -TERM -PGID``), and the parent, which
    got it too, runs the warm shutdown: keep running the task, as SIGINT is ignored."""
    if term_allowed.value:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _serve(
    app: Any, conn: Connection, taken: Any, max_tasks: int | None, max_memory_kib: int | None
) -> None:
    done = 0
    while True:
        order = conn.recv()
        if order is None:
            return
        # Counted before any task code runs: if we die before this, the parent knows the
        # job never started and may hand it to another child instead of reporting the
        # worker lost. Shared memory, so the usual job costs no message for it.
        taken.value += 1
        if order[-1]:
            conn.send_bytes(dumps((STARTED,)))
        wire = _run(app, order)
        done += 1
        reason = retire_reason(done, max_tasks, max_memory_kib)
        conn.send_bytes(dumps((DONE, wire, reason)))
        if reason is not None:
            return


def _run(app: Any, order: tuple[bytes, str, int, str | None, float | None, bool]) -> dict[str, Any]:
    payload, queue, delivery_count, hostname, soft, _ = order
    try:
        job = execution.job_from_payload(app, payload, queue, delivery_count, hostname)
    except Exception as exc:  # the parent decoded it already: this is a bug, not bad input
        logger.exception("prefork child could not rebuild a job: %r", exc)
        return execution.outcome_to_wire(Outcome(OutcomeKind.FAILURE, states.FAILURE, exc=exc))
    outcome = execution.run(job) if soft is None else _run_with_soft_limit(job, soft)
    limit = job.task.resultrepr_maxsize
    try:
        return execution.outcome_to_wire(outcome, limit)
    except Exception as exc:  # a return value whose __repr__ raises: send what we can
        logger.warning(
            "Task %s[%s]: outcome not representable: %r", job.task.name, job.request.id, exc
        )
        outcome.retval = None
        if outcome.exc is not None:
            outcome.exc = RuntimeError(f"{type(outcome.exc).__name__} (repr failed: {exc!r})")
        return execution.outcome_to_wire(outcome, limit)


class _SoftLimit:
    """A job's soft limit, entered by trace just around the body: a one-shot
    ITIMER_REAL of ``soft`` seconds whose ``SIGALRM`` handler raises inside the body.

    The handler raises only while armed, and it is disarmed before the timer is cancelled,
    so a SIGALRM whose Python handler runs late does nothing: the exception can only land
    between ``__enter__`` and ``__exit__``, where trace records it as the body's failure.
    (A task that uses SIGALRM itself replaces the handler for its job.)
    """

    armed = False  # class-wide: the handler reads it, and one job runs at a time

    def __init__(self, soft: float) -> None:
        self.soft = soft

    def __enter__(self) -> None:
        signal.signal(signal.SIGALRM, _on_alarm)
        _SoftLimit.armed = True
        signal.setitimer(signal.ITIMER_REAL, self.soft)

    def __exit__(self, *exc_info: object) -> None:
        _SoftLimit.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


def _on_alarm(signum: int, frame: Any) -> None:
    """SIGALRM: the soft limit passed. Runs in the main thread between two bytecodes of
    whatever runs there, so it raises inside the task body (a blocking call is interrupted
    and not resumed). It neither logs nor blocks: the parent logs the limit."""
    if _SoftLimit.armed:
        _SoftLimit.armed = False  # one per job: a second alarm must not raise again
        raise SoftTimeLimitExceeded()


def _run_with_soft_limit(job: execution.Job, soft: float) -> Outcome:
    """``execution.run(job)`` with the soft limit armed around the body only."""
    return execution.precheck(job) or trace_task(
        job.task, job.request, around_body=_SoftLimit(soft)
    )


def retire_reason(done: int, max_tasks: int | None, max_memory_kib: int | None) -> str | None:
    """Why this child should stop taking jobs now, or None to keep going."""
    if max_tasks is not None and done >= max_tasks:
        return f"it ran {done} tasks (max_tasks_per_child={max_tasks})"
    if max_memory_kib is not None:
        rss = resident_kib()
        if rss > max_memory_kib:
            return f"it uses {rss} KiB (max_memory_per_child={max_memory_kib} KiB)"
    return None
