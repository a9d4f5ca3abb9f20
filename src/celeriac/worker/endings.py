"""How a task ends when trace did not see its body end: revoked, expired, stopped at its
hard time limit, lost with the process that ran it (failed, or retried when the task
has ``retry_on_worker_lost``), or its message gone to the dead letters (refused unread,
rejected, lost by the broker once too often).

Each ending does what trace does for a failure, in the same order: record the state
(under trace's storing rules), send the signal, then run what follows the task (its
errbacks, the rest of its chain, its chord's join), so nothing downstream waits forever.
These calls block on the result store and may publish: the consumer runs them off its
event loop. Imports leaves, ``followups`` and ``trace``; ``Job``, ``Request`` and the app
are only types here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from celeriac import followups, signals, states
from celeriac.einfo import ExceptionInfo
from celeriac.exceptions import Retry, TaskRevokedError
from celeriac.trace import Outcome, OutcomeKind, send_task_failure

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac
    from celeriac.request import Request
    from celeriac.worker.execution import Job

logger = logging.getLogger("celeriac.worker")


def revoked(job: Job, *, terminated: bool, signum: int | None = None) -> Outcome:
    """Revoked before it ran, or stopped while it ran (``terminated``)."""
    task, request = job.task, job.request
    logger.info("Task %s[%s] revoked%s", task.name, request.id, " (terminated)" * terminated)
    exc = TaskRevokedError("revoked")
    _record(job, exc, states.REVOKED)
    signals.task_revoked.send(
        sender=task, request=request, terminated=terminated, signum=signum, expired=False
    )
    _abandon(job, exc, None)
    return Outcome(OutcomeKind.IGNORE, states.REVOKED, exc=exc)


def expired(job: Job) -> Outcome:
    """Past its ``expires``: not run, recorded REVOKED."""
    task, request = job.task, job.request
    exc = TaskRevokedError(f"expired at {request.expires}")
    _record(job, exc, states.REVOKED)
    signals.task_revoked.send(
        sender=task, request=request, terminated=False, signum=None, expired=True
    )
    _abandon(job, exc, None)
    logger.info("Task %s[%s] expired: discarded", task.name, request.id)
    return Outcome(OutcomeKind.IGNORE, states.REVOKED, exc=exc)


def failed(job: Job, exc: BaseException) -> Outcome:
    """Stopped from outside its body (a hard time limit, its process died): FAILURE, the
    ``task_failure`` signal, then its errbacks, chain and chord learn of it."""
    einfo = ExceptionInfo(exc)
    _record(job, exc, states.FAILURE, einfo.traceback)
    send_task_failure(job.task, job.request, exc, einfo)
    _after_failure(job, exc, einfo.traceback)
    return Outcome(OutcomeKind.FAILURE, states.FAILURE, exc=exc, traceback=einfo.traceback)


def given_up(job: Job, exc: BaseException, *, signal: bool = True) -> Outcome | None:
    """The call will not run again and nothing told what follows it yet: its message went
    to the dead letters (a ``Reject``, the delivery limit reached, dead-lettered by the
    broker itself, an error in the worker), or a ``Reject`` came after an early ack. As
    ``failed`` (``signal=False``: no ``task_failure``, as trace sends none for
    a ``Reject``). None when the call had already ended: what follows was told then."""
    if ended(job.task.backend, job.id):
        return None
    einfo = ExceptionInfo(exc)
    _record(job, exc, states.FAILURE, einfo.traceback)
    if signal:
        send_task_failure(job.task, job.request, exc, einfo)
    _after_failure(job, exc, einfo.traceback)
    return Outcome(OutcomeKind.FAILURE, states.FAILURE, exc=exc, traceback=einfo.traceback)


def refused(app: Celeriac, request: Request, exc: BaseException) -> None:
    """A message refused before any task could run it (an unknown task name, an invalid
    field, a body that cannot be read): FAILURE for its task id, so ``result.get()`` raises
    ``exc``, then its errbacks, chain and chord, as far as ``request`` could be read from
    the message. Nothing when the call had already ended."""
    task_id = request.id
    if task_id is None or ended(app.backend, task_id):
        return
    try:
        app.backend.store_result(task_id, exc, states.FAILURE, name=request.task, request=request)
    except Exception as error:  # no backend, or it is down: the dead letter still matters
        logger.debug("could not record the refusal of %s: %r", task_id, error)
    try:
        followups.after_failure(app, request, exc, None)
    except Exception:
        logger.exception("Task %s[%s]: could not end its workflow", request.task, task_id)


def ended(backend: Any, task_id: str) -> bool:
    """Whether the call already has a final state (SUCCESS, FAILURE, REVOKED): what follows
    it was told then, and must not be told twice. A store that cannot say reads as False:
    telling twice is better than never."""
    try:
        return backend.get_task_meta(task_id)["status"] in states.READY_STATES
    except Exception:
        return False


def retries_exhausted(job: Job) -> bool:
    """``retry_on_worker_lost`` no longer applies: the call used up its ``max_retries``."""
    limit = job.task.max_retries
    return limit is not None and job.request.retries >= limit


def retried_after_loss(job: Job, exc: BaseException) -> Outcome | None:
    """Its process died: send the call again as ``retry()`` would (``retries + 1``, after
    ``default_retry_delay``), record RETRY, run ``on_retry`` and ``task_retry``. None when
    the retry could not be sent: the caller then handles the loss as usual."""
    task, request = job.task, job.request
    countdown = task.default_retry_delay
    try:
        task.signature_from_request(
            request, countdown=countdown, retries=request.retries + 1
        ).apply_async()
    except Exception as error:
        logger.error("Task %s[%s]: could not send its retry after its process died: %r",
                     task.name, request.id, error)  # fmt: skip
        return None
    einfo = ExceptionInfo(exc)
    _record(job, exc, states.RETRY, einfo.traceback)
    reason = Retry(exc=exc, when=countdown)
    try:
        task.on_retry(exc, request.id, request.args, request.kwargs, einfo)
    except Exception:
        logger.exception("Task %s[%s]: on_retry raised", task.name, request.id)
    signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)
    logger.info("Task %s[%s] retry: %s", task.name, request.id, reason)
    return Outcome(
        OutcomeKind.RETRY, states.RETRY, exc=reason, traceback=einfo.traceback, retry=reason
    )


# -- the steps ----------------------------------------------------------------------------------
def _keeps_result(job: Job) -> bool:
    """Trace's storing rule for an error state: kept unless the result is ignored (and
    errors are not stored anyway); a chord member's always, as its chord reads it."""
    task, request = job.task, job.request
    if request.chord:
        return True
    ignored = request.ignore_result or task.resolve_ignore_result()
    return not ignored or bool(task.resolve_store_errors())


def _record(job: Job, exc: BaseException, state: str, tb: str | None = None) -> None:
    """Store the state; a store that is down is logged, never raised: the message is
    settled either way, and the followups still run."""
    if not _keeps_result(job):
        return
    task, request = job.task, job.request
    try:
        task.backend.store_result(job.id, exc, state, traceback=tb, name=task.name, request=request)
    except Exception as error:
        logger.error("Task %s[%s]: could not record %r: %r", task.name, request.id, exc, error)


def _after_failure(job: Job, exc: BaseException, tb: str | None) -> None:
    _guarded(job, followups.after_failure, exc, tb)


def _abandon(job: Job, exc: BaseException, tb: str | None) -> None:
    _guarded(job, followups.abandon, exc, tb)


def _guarded(job: Job, step: Any, exc: BaseException, tb: str | None) -> None:
    """Run a followup step; its failure is logged, as trace logs a broken callback."""
    try:
        step(job.task.app, job.request, exc, tb, sender=job.task)
    except Exception:
        logger.exception("Task %s[%s]: could not end its workflow", job.task.name, job.request.id)


__all__ = [
    "ended",
    "expired",
    "failed",
    "given_up",
    "refused",
    "retried_after_loss",
    "retries_exhausted",
    "revoked",
]
