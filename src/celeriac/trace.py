"""``trace``: the one place that runs a task body, for the worker and for ``apply()`` alike.

App core: imports leaves, ``followups``, ``request`` and ``results``; it sees a task only
through its attributes (``task.py`` sits above it). It sets the request context, fires
signals and hooks, stores the result, applies callbacks, and returns an ``Outcome`` that
tells its caller what to do with the message: ack, re-publish a retry, requeue, or
dead-letter. It never touches a broker delivery itself.
"""

from __future__ import annotations

import asyncio
import contextvars
import enum
import inspect
import logging
import threading
import time
from contextlib import AbstractAsyncContextManager, AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from celeriac import followups, signals, states
from celeriac._context import pop_request, push_request
from celeriac.einfo import ExceptionInfo
from celeriac.exceptions import EncodeError, Ignore, Reject, Retry, WorkerShutdown, WorkerTerminate
from celeriac.request import Request

if TYPE_CHECKING:  # types only: tasks sit above trace
    from celeriac.task import Task

logger = logging.getLogger("celeriac.app.trace")


__all__ = ["ExceptionInfo", "Outcome", "OutcomeKind", "run_body", "send_task_failure", "trace_task"]


class OutcomeKind(str, enum.Enum):
    SUCCESS = "success"  # ack
    FAILURE = "failure"  # ack (the failure is recorded)
    RETRY = "retry"  # publish outcome.retry.sig, then ack
    REJECT = "reject"  # requeue (outcome.requeue) or dead-letter
    IGNORE = "ignore"  # ack, nothing recorded
    SHUTDOWN = "shutdown"  # ack, nothing recorded; the worker stops (exc says warm or cold)


@dataclass(slots=True)
class Outcome:
    kind: OutcomeKind
    state: str
    retval: Any = None
    exc: BaseException | None = None
    traceback: str | None = None
    runtime: float = 0.0
    retry: Retry | None = None
    requeue: bool = False


def run_body(task: Task[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call the task; an ``async def`` body runs to completion on an event loop."""
    value = task(*args, **kwargs)
    if not inspect.iscoroutine(value):
        return value
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(value)
    # A loop already runs in this thread (e.g. apply() from async code): use another thread.
    box: dict[str, Any] = {}
    context = contextvars.copy_context()

    def runner() -> None:
        try:
            box["value"] = context.run(asyncio.run, value)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=runner, name=f"celeriac-async-{task.name}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _ignores_result(task: Task[..., Any], request: Request) -> bool:
    if request.chord:  # the chord's body needs every header result
        return False
    return bool(request.ignore_result or task.resolve_ignore_result())


def _store(task: Task[..., Any], request: Request, result: Any, state: str, tb: str | None) -> None:
    if request.id is None:  # no id, no result to keep (never so for a sent or applied call)
        return
    task.backend.store_result(
        request.id, result, state, traceback=tb, name=task.name, request=request
    )


def trace_task(
    task: Task[..., Any],
    request: Request,
    *,
    store_result: bool = True,
    around_body: AbstractContextManager[object] | None = None,
) -> Outcome:
    """Run ``task`` for ``request`` and decide what happens to its message.

    ``around_body`` is entered just around the body (after ``task_prerun`` and
    ``before_start``, before anything is recorded): a pool's time limits. What it raises
    is the body's failure, recorded with every hook, signal and errback.
    """
    tracing = task.app.tracing
    if tracing is None:  # the common case pays for nothing
        return _trace(task, request, store_result, around_body)
    traced = tracing.start_run(task, request)  # current through callbacks and signals
    try:
        outcome = _trace(task, request, store_result, around_body)
    except BaseException as exc:
        traced.end(None, exc)
        raise
    traced.end(outcome, None)
    return outcome


def _trace(
    task: Task[..., Any],
    request: Request,
    store_result: bool,
    around_body: AbstractContextManager[object] | None,
) -> Outcome:
    token, started = _begin(task, request)
    try:
        try:
            _before_body(task, request, store_result)
            if around_body is None:
                retval = run_body(task, request.args, request.kwargs)
            else:
                with around_body:
                    retval = run_body(task, request.args, request.kwargs)
            error = None
        except Exception as exc:
            retval, error = None, exc
        except (WorkerShutdown, WorkerTerminate) as stop:
            return _stop_worker(task, request, stop)
        outcome = _record(task, request, store_result, started, retval, error)
    except Exception as exc:  # bookkeeping failed (a hook, the result store): never crash
        outcome = _internal_error(task, request, exc, store_result)
    finally:
        pop_request(token)
    return _end(task, request, outcome)


async def trace_task_async(
    task: Task[..., Any],
    request: Request,
    *,
    store_result: bool = True,
    around_body: AbstractAsyncContextManager[object] | None = None,
) -> Outcome:
    """``trace_task`` for ``async def`` bodies: the body runs on the caller's event loop.

    ``around_body`` is ``trace_task``'s, entered with ``async with``: the body (the call
    and every await of its result) runs inside it, in the caller's asyncio task.
    """
    tracing = task.app.tracing
    if tracing is None:
        return await _trace_async(task, request, store_result, around_body)
    traced = tracing.start_run(task, request)
    try:
        outcome = await _trace_async(task, request, store_result, around_body)
    except BaseException as exc:
        traced.end(None, exc)
        raise
    traced.end(outcome, None)
    return outcome


async def _trace_async(
    task: Task[..., Any],
    request: Request,
    store_result: bool,
    around_body: AbstractAsyncContextManager[object] | None,
) -> Outcome:
    token, started = _begin(task, request)
    try:
        try:
            _before_body(task, request, store_result)
            if around_body is None:
                value = task(*request.args, **request.kwargs)
                retval = await value if inspect.isawaitable(value) else value
            else:
                async with around_body:
                    value = task(*request.args, **request.kwargs)
                    retval = await value if inspect.isawaitable(value) else value
            error = None
        except Exception as exc:
            retval, error = None, exc
        except (WorkerShutdown, WorkerTerminate) as stop:
            return _stop_worker(task, request, stop)
        outcome = _record(task, request, store_result, started, retval, error)
    except Exception as exc:
        outcome = _internal_error(task, request, exc, store_result)
    finally:
        pop_request(token)
    return _end(task, request, outcome)


def _begin(task: Task[..., Any], request: Request) -> tuple[Any, float]:
    token = push_request(request)
    # Each signal is asked first: building the keywords of a call that nobody receives
    # would cost more than the question, on every task.
    if signals.task_prerun.has_receivers:
        signals.task_prerun.send(
            sender=task, task_id=request.id, task=task, args=request.args, kwargs=request.kwargs
        )
    return token, time.perf_counter()


def _end(task: Task[..., Any], request: Request, outcome: Outcome) -> Outcome:
    if not signals.task_postrun.has_receivers:
        return outcome
    signals.task_postrun.send(
        sender=task,
        task_id=request.id,
        task=task,
        args=request.args,
        kwargs=request.kwargs,
        retval=outcome.retval if outcome.exc is None else outcome.exc,
        state=outcome.state,
    )
    return outcome


def _before_body(task: Task[..., Any], request: Request, store: bool) -> None:
    task.before_start(request.id, request.args, request.kwargs)
    if store and task.resolve_track_started() and not request.is_eager:
        _store(task, request, {"pid": None, "hostname": request.hostname}, states.STARTED, None)


def _record(
    task: Task[..., Any],
    request: Request,
    store: bool,
    started: float,
    retval: Any,
    error: Exception | None,
) -> Outcome:
    """Turn what the body did into an outcome: store it, fire hooks and signals."""
    if error is None:
        outcome = _on_success(task, request, retval, store, started)
    elif isinstance(error, Retry):
        outcome = _on_retry(task, request, error, store)
    elif isinstance(error, Ignore):
        outcome = Outcome(OutcomeKind.IGNORE, states.IGNORED, exc=error)
    elif isinstance(error, Reject):  # no signal, as in Celery: task_rejected is the worker's
        outcome = Outcome(OutcomeKind.REJECT, states.REJECTED, exc=error, requeue=error.requeue)
    else:
        outcome = _on_failure(task, request, error, store)
    outcome.runtime = time.perf_counter() - started
    einfo = ExceptionInfo(outcome.exc) if outcome.exc is not None else None
    task.after_return(
        outcome.state, outcome.retval, request.id, request.args, request.kwargs, einfo
    )
    return outcome


def _stop_worker(task: Task[..., Any], request: Request, stop: SystemExit) -> Outcome:
    """The body raised ``WorkerShutdown`` or ``WorkerTerminate``: as in Celery, nothing is
    recorded and no hook runs; the worker acks the message and stops (warm or cold)."""
    how = "cold" if isinstance(stop, WorkerTerminate) else "warm"
    logger.warning(
        "Task %s[%s] raised %s: %s shutdown", task.name, request.id, type(stop).__name__, how
    )
    return Outcome(OutcomeKind.SHUTDOWN, states.STARTED, exc=stop)


def _internal_error(task: Task[..., Any], request: Request, exc: Exception, store: bool) -> Outcome:
    logger.critical("Task %s[%s] internal error: %r", task.name, request.id, exc, exc_info=exc)
    einfo = followups.signal_internal_error(task, request, exc)
    if store:
        try:
            _store(task, request, exc, states.FAILURE, einfo.traceback)
        except Exception:
            logger.exception("Task %s[%s]: could not record the failure", task.name, request.id)
    try:  # what was to follow this task will not: say so instead of leaving it PENDING
        followups.abandon(task.app, request, exc, einfo.traceback, sender=task)
    except Exception:
        logger.exception("Task %s[%s]: could not end its workflow", task.name, request.id)
    return Outcome(OutcomeKind.FAILURE, states.FAILURE, exc=exc, traceback=einfo.traceback)


def _unencodable_result(task: Task[..., Any], retval: Any, exc: Exception) -> EncodeError:
    serializer = task.backend.serializer
    return EncodeError(
        f"task {task.name!r} returned a {type(retval).__module__}.{type(retval).__qualname__}, "
        f"which the {serializer!r} result serializer cannot encode ({exc}). Return plain data "
        f"(dicts, lists, strings, numbers), or store large or rich data elsewhere and return "
        f"its key."
    )


def _on_success(
    task: Task[..., Any], request: Request, retval: Any, store: bool, started: float
) -> Outcome:
    if store and not _ignores_result(task, request):
        if task.trail:  # what the success sends is listed among its children, as in Celery
            followups.freeze_callbacks(task.app, request)
        try:
            _store(task, request, retval, states.SUCCESS, None)
        except Exception as exc:
            return _on_failure(task, request, _unencodable_result(task, retval, exc), store)
    task.on_success(retval, request.id, request.args, request.kwargs)
    runtime = time.perf_counter() - started  # as Celery: the body and the result's storing
    if signals.task_success.has_receivers:
        signals.task_success.send(sender=task, result=retval, runtime=runtime)
    followups.apply_callbacks(task.app, request, retval, sender=task)
    return Outcome(OutcomeKind.SUCCESS, states.SUCCESS, retval=retval)


def _on_failure(task: Task[..., Any], request: Request, exc: Exception, store: bool) -> Outcome:
    einfo = ExceptionInfo(exc)
    if store and (not _ignores_result(task, request) or task.resolve_store_errors()):
        _store(task, request, exc, states.FAILURE, einfo.traceback)
    task.on_failure(exc, request.id, request.args, request.kwargs, einfo)
    send_task_failure(task, request, exc, einfo)
    followups.after_failure(task.app, request, exc, einfo.traceback, sender=task)
    if isinstance(exc, tuple(task.throws)):  # expected: no traceback in the log
        logger.info("Task %s[%s] raised expected: %r", task.name, request.id, exc)
    else:
        logger.error("Task %s[%s] raised unexpected: %r", task.name, request.id, exc, exc_info=exc)
    return Outcome(OutcomeKind.FAILURE, states.FAILURE, exc=exc, traceback=einfo.traceback)


def send_task_failure(
    task: Task[..., Any], request: Request, exc: BaseException, einfo: ExceptionInfo
) -> None:
    """The ``task_failure`` signal, as trace and the worker's other endings send it."""
    signals.task_failure.send(
        sender=task,
        task_id=request.id,
        exception=exc,
        args=request.args,
        kwargs=request.kwargs,
        traceback=einfo.tb,
        einfo=einfo,
    )


def _on_retry(task: Task[..., Any], request: Request, retry: Retry, store: bool) -> Outcome:
    reason = retry.exc if retry.exc is not None else retry
    einfo = ExceptionInfo(retry)
    if store and not _ignores_result(task, request):
        _store(task, request, reason, states.RETRY, einfo.traceback)
    task.on_retry(reason, request.id, request.args, request.kwargs, einfo)
    signals.task_retry.send(sender=task, request=request, reason=reason, einfo=einfo)
    logger.info("Task %s[%s] retry: %s", task.name, request.id, retry)
    return Outcome(OutcomeKind.RETRY, states.RETRY, exc=retry, retry=retry)
