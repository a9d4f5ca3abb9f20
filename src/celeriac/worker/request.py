"""Custom request classes: ``Task.Request`` names a subclass of ``Request`` whose hooks
the worker calls in its main process, whatever the pool (Celery's custom requests).

The worker records states, settles messages and sends signals itself; these hooks only
observe, so the base class's do nothing but keep its attributes current and route a
failure to ``on_retry`` as Celery's does. An error in a user's hook is logged and never
reaches the worker or the message. Runtime layer: imports leaves, ``_imports`` and
``trace``'s outcome types; the job types are types only.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from functools import cached_property
from typing import TYPE_CHECKING, Any

from celeriac import states
from celeriac._imports import symbol_by_name
from celeriac.einfo import ExceptionInfo
from celeriac.exceptions import ImproperlyConfigured, Retry, TimeLimitExceeded
from celeriac.messages.validation import parse_iso
from celeriac.trace import Outcome, OutcomeKind

if TYPE_CHECKING:
    from celeriac.worker.execution import HeldJob, Job

logger = logging.getLogger("celeriac.worker")

DEFAULT = "celeriac.worker.request:Request"  # Task.Request's default


class Request:
    """One task message as the worker's main process sees it, with Celery's hooks.

    ``self.request`` inside the task is still ``celeriac.request.Request``; this object
    lives beside it in the worker and is built for each message of a task whose
    ``Request`` is a subclass.
    """

    def __init__(self, job: HeldJob, hostname: str | None = None) -> None:
        context = job.request
        self._context = context
        self.task = job.task
        self.app = job.task.app
        self.id = self.task_id = str(context.id)
        self.type = str(context.task)  # the registered name the message was sent to
        self.name = self.task_name = context.shadow or self.type
        self.args, self.kwargs = context.args, context.kwargs
        self.hostname = hostname or context.hostname
        self.delivery_info = context.delivery_info
        self.root_id, self.parent_id = context.root_id, context.parent_id
        self.reply_to, self.correlation_id = context.reply_to, context.correlation_id
        self.time_limits = context.timelimit
        self.stamps, self.stamped_headers = context.stamps, context.stamped_headers
        self.time_start: float | None = None  # set by on_accepted
        self.worker_pid: int | None = None  # set by on_accepted
        self.acknowledged = False  # the message is settled (acked, requeued or buried)

    # -- what Celery's request reads from its message ---------------------------------------
    @property
    def eta(self) -> dt.datetime | None:
        return _aware(self._context.eta)

    @property
    def expires(self) -> dt.datetime | None:
        return _aware(self._context.expires)

    @property
    def argsrepr(self) -> str:
        return str(self._context.headers.get("argsrepr") or repr(self.args))

    @property
    def kwargsrepr(self) -> str:
        return str(self._context.headers.get("kwargsrepr") or repr(self.kwargs))

    @property
    def ignore_result(self) -> bool:
        return bool(self._context.ignore_result or self.task.resolve_ignore_result())

    @property
    def store_errors(self) -> bool:
        """Whether a failure is stored: always, unless the result is ignored."""
        return not self.ignore_result or bool(self.task.resolve_store_errors())

    @cached_property
    def request_dict(self) -> dict[str, Any]:
        """The message's headers with what the worker adds (``args``, ``kwargs``,
        ``hostname``, ``delivery_info``, ``reply_to``, ``correlation_id``)."""
        c = self._context
        fields = ("id", "task", "retries", "eta", "expires", "group", "group_index",
                  "root_id", "parent_id", "origin", "shadow", "timelimit", "ignore_result",
                  "stamped_headers", "stamps")  # fmt: skip
        found = {**c.headers, **{name: getattr(c, name) for name in fields}}
        found.update(
            args=c.args, kwargs=c.kwargs, hostname=self.hostname, properties=c.properties,
            delivery_info=c.delivery_info, reply_to=c.reply_to, correlation_id=c.correlation_id,
        )  # fmt: skip
        return found

    def info(self, safe: bool = False) -> dict[str, Any]:
        """What ``inspect active`` shows of it (``safe``: the arguments as their reprs)."""
        return {
            "id": self.id,
            "name": self.name,
            "args": self.argsrepr if safe else self.args,
            "kwargs": self.kwargsrepr if safe else self.kwargs,
            "type": self.type,
            "hostname": self.hostname,
            "time_start": self.time_start,
            "acknowledged": self.acknowledged,
            "delivery_info": self.delivery_info,
            "worker_pid": self.worker_pid,
        }

    def humaninfo(self) -> str:
        return f"{self.name}[{self.id}]"

    def __str__(self) -> str:
        parts = [self.humaninfo()]
        parts += [f"ETA:[{self.eta}]"] if self.eta else []
        parts += [f"expires:[{self.expires}]"] if self.expires else []
        return " ".join(parts)

    def __repr__(self) -> str:
        return f"<{type(self).__name__}: {self.humaninfo()} {self.argsrepr} {self.kwargsrepr}>"

    # -- the hooks --------------------------------------------------------------------------
    def on_accepted(self, pid: int, time_accepted: float) -> None:
        """A pool took the task (``time_accepted`` on the ``time.monotonic()`` clock)."""
        self.worker_pid = pid
        self.time_start = time.time() - (time.monotonic() - time_accepted)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """A time limit passed (the worker logs and records it)."""

    def on_success(self, failed__retval__runtime: tuple[bool, Any, float], **kwargs: Any) -> None:
        """The run ended: ``(False, repr of the result, runtime)``, or ``(True,
        ExceptionInfo, runtime)`` for a run that raised, which goes on to ``on_failure``."""
        failed, retval, _runtime = failed__retval__runtime
        if failed:
            self.on_failure(retval, return_ok=True)

    def on_retry(self, exc_info: ExceptionInfo) -> None:
        """The task called ``retry()``: ``exc_info.exception`` is the ``Retry``."""

    def on_failure(
        self, exc_info: ExceptionInfo, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """The run raised, hit its hard time limit or lost its process; a ``Retry`` goes
        on to ``on_retry``."""
        if isinstance(exc_info.exception, Retry):
            self.on_retry(exc_info)


def _aware(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    when = parse_iso(value)
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.timezone.utc)


# -- the worker's side ----------------------------------------------------------------------------
def request_class(task: Any) -> type[Request]:
    """The class ``task.Request`` names (a class or a ``'module:Class'`` path), checked."""
    named = getattr(task, "Request", DEFAULT)
    if named == DEFAULT or named is Request:  # the common case: no import per message
        return Request
    found = symbol_by_name(named, f"{task.name}.Request")
    if not (isinstance(found, type) and issubclass(found, Request)):
        raise ImproperlyConfigured(
            f"{task.name}.Request is {named!r}: it must be a subclass of "
            f"celeriac.worker.request.Request (or its 'module:Class' path)"
        )
    return found


def check_request_classes(app: Any) -> None:
    """At worker start: every task's ``Request`` can be loaded (else a clear error)."""
    for task in app.tasks.values():
        request_class(task)


def for_job(job: HeldJob, hostname: str | None) -> Request | None:
    """The custom request of ``job``; None for the base class (nothing to tell)."""
    cls = request_class(job.task)
    return None if cls is Request else cls(job, hostname)


def wants_accepted(job: Job) -> bool:
    """Whether ``job`` has hooks to tell when a pool takes it (``accepted``)."""
    return getattr(job, "custom", None) is not None


def accepted(job: Job, pid: int) -> None:
    """A pool took ``job`` in process ``pid``."""
    _call(job, "on_accepted", pid, time.monotonic())


def timed_out(job: Job, soft: bool, timeout: float) -> None:
    _call(job, "on_timeout", soft, timeout)


def settled(job: Job) -> None:
    """Its message was acked, requeued or dead-lettered."""
    custom = getattr(job, "custom", None)
    if custom is not None:
        custom.acknowledged = True


def finished(job: Job, outcome: Outcome) -> None:
    """Tell the hooks how the run ended, as Celery's pool callbacks do."""
    if getattr(job, "custom", None) is None or not _ran(outcome):
        return
    if outcome.kind is OutcomeKind.SUCCESS:
        text = outcome.retval if isinstance(outcome.retval, str) else repr(outcome.retval)
        _call(job, "on_success", (False, text, outcome.runtime))
    elif isinstance(outcome.exc, TimeLimitExceeded):  # stopped from outside the body
        _call(job, "on_failure", _exc_info(outcome))
        timeout = outcome.exc.args[0] if outcome.exc.args else None
        _call(job, "on_timeout", False, timeout)
    else:
        _call(job, "on_success", (True, _exc_info(outcome), outcome.runtime))


def lost(job: Job, exc: BaseException) -> None:
    """The process running it died."""
    _call(job, "on_failure", ExceptionInfo(exc))


def _ran(outcome: Outcome) -> bool:
    """Expired, revoked and duplicate runs never reached a pool's callbacks in Celery."""
    if outcome.kind is OutcomeKind.IGNORE:
        return outcome.state == states.IGNORED  # the task raised Ignore
    return True


def _exc_info(outcome: Outcome) -> ExceptionInfo:
    retry = outcome.retry if outcome.kind is OutcomeKind.RETRY else None
    exc = retry or outcome.exc or Exception(outcome.state)
    info = ExceptionInfo(exc)
    if outcome.traceback:  # from a prefork child, where the exception was raised
        info.traceback = outcome.traceback
    return info


def _call(job: Job, hook: str, *args: Any) -> None:
    custom = getattr(job, "custom", None)
    if custom is None:
        return
    try:
        getattr(custom, hook)(*args)
    except Exception:
        logger.exception("Task %s[%s]: %s.%s raised", job.task.name, job.id,
                         type(custom).__name__, hook)  # fmt: skip


__all__ = ["Request", "check_request_classes", "for_job", "request_class"]
