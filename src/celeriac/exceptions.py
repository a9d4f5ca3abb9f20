"""Every exception celeriac raises, in one tree with one root.

Leaf module: imports nothing from celeriac. Names follow Celery's so that
``except celery.exceptions.Retry`` becomes ``except celeriac.exceptions.Retry``.

    CeleriacError
    ├── ImproperlyConfigured
    ├── SecurityError                      -- a signature, key or certificate check failed
    ├── NotRegistered (also KeyError)
    ├── SerializationError
    │   ├── EncodeError (also TypeError)   -- argument cannot be serialised; message too large
    │   ├── DecodeError (also ValueError)  -- payload cannot be read
    │   │   ├── InvalidTaskError           -- a message field has the wrong type or value
    │   │   └── MessageTooLarge            -- over task_message_max_size where it is read
    │   └── ContentDisallowed              -- content type not in accept_content
    ├── BrokerError (also named OperationalError)   -- a broker operation failed
    │   └── BrokerConnectionError (also ConnectionError)
    │       └── BrokerAccessRefused        -- login or vhost refused: retrying cannot help
    ├── BackendError                                   -- the result store failed
    │   ├── BackendConnectionError (also ConnectionError)
    │   ├── BackendGetMetaError            -- reading a task's state failed (task_id)
    │   │   └── GetMetaConnectionLost (also BackendConnectionError)
    │   └── BackendStoreError              -- storing a task's state failed (state, task_id)
    │       └── StoreConnectionLost (also BackendConnectionError)
    ├── TimeoutError (also builtins.TimeoutError)  -- AsyncResult.get(timeout=...)
    ├── TaskError
    │   ├── AlreadyRegistered      -- never raised, as in Celery
    │   ├── TaskPredicate
    │   │   ├── Retry              -- raised by Task.retry(); not a failure
    │   │   ├── Reject             -- reject the message (requeue or dead-letter)
    │   │   └── Ignore             -- stop: no result, no further state
    │   ├── MaxRetriesExceededError
    │   ├── TaskRevokedError
    │   ├── TimeLimitExceeded
    │   ├── WorkerLostError
    │   ├── RemoteTaskError        -- a failure whose exception type is not trusted locally
    │   ├── SyncSubtaskError (also RuntimeError) -- result.get() inside a task
    │   └── IncompleteStream       -- result.collect() met a task that is not ready
    └── SoftTimeLimitExceeded (also builtins.Exception, raised inside task bodies)

Apart from the tree: ``CeleryCommandException`` (a ``click.ClickException``: a command's
message and exit status), and ``WorkerShutdown``/``WorkerTerminate`` (``SystemExit``: a task
raising one stops its worker, warm or cold). Warnings have a root of their own,
``CeleryWarning`` (a ``UserWarning``).
"""

from __future__ import annotations

import builtins
from typing import Any

import click


class CeleriacError(Exception):
    """Root of every celeriac exception."""


# Celery's root is named CeleryError; keep the name importable.
CeleryError = CeleriacError


class ImproperlyConfigured(CeleriacError):
    """The app's configuration cannot work; the message says what to change."""


class SecurityError(CeleriacError):
    """Message signing failed: a missing or bad signature, an unknown or expired
    certificate, a key that cannot be read. The message says which."""


class NotRegistered(CeleriacError, KeyError):
    """A task name is not in the app's registry."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "task not registered"


class SerializationError(CeleriacError):
    """A value could not be turned into bytes, or bytes back into a value."""


class EncodeError(SerializationError, TypeError):
    """A value cannot be encoded (an unserialisable argument, an oversized message)."""


class DecodeError(SerializationError, ValueError):
    """A payload cannot be decoded."""


class InvalidTaskError(DecodeError):
    """A task message decodes, but one of its fields has the wrong type or value (say
    ``retries`` that is not a number, an ``eta`` that is not a date); the message names it."""


class MessageTooLarge(DecodeError):
    """A received message, or its body once decompressed, is larger than the reader's
    ``task_message_max_size``; it is refused before it is read any further."""


class ContentDisallowed(SerializationError):
    """The payload's content type is not named in ``accept_content``."""


class BrokerError(CeleriacError):
    """A broker could not do what was asked."""


# Celery re-exports kombu's OperationalError, raised when a message cannot be sent (the
# broker is down, a channel failed); celeriac's broker errors are that error.
OperationalError = BrokerError


class BrokerConnectionError(BrokerError, ConnectionError):
    """The broker could not be reached after the configured retries."""


class BrokerAccessRefused(BrokerConnectionError):
    """The broker answered but refused this client: wrong credentials, or a RabbitMQ vhost
    that does not exist or that the user may not use. Retrying cannot fix it; the message
    names the fix."""


class BackendError(CeleriacError):
    """The result backend could not do what was asked."""


class BackendConnectionError(BackendError, ConnectionError):
    """The result backend could not be reached, or was closed while in use."""


class BackendGetMetaError(BackendError):
    """Reading a task's state from the result store failed (``task_id`` names the task)."""

    def __init__(self, *args: Any, task_id: str = "") -> None:
        super().__init__(*args)
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"{super().__repr__()} task_id:{self.task_id}"


class BackendStoreError(BackendError):
    """Storing a task's state in the result store failed (``state`` and ``task_id`` say
    what was being stored)."""

    def __init__(self, *args: Any, state: str = "", task_id: str = "") -> None:
        super().__init__(*args)
        self.state = state
        self.task_id = task_id

    def __repr__(self) -> str:
        return f"{super().__repr__()} state:{self.state} task_id:{self.task_id}"


class GetMetaConnectionLost(BackendGetMetaError, BackendConnectionError):
    """A ``BackendGetMetaError`` because the store could not be reached: one
    ``except BackendConnectionError`` still catches every lost store."""


class StoreConnectionLost(BackendStoreError, BackendConnectionError):
    """A ``BackendStoreError`` because the store could not be reached."""


class TimeoutError(CeleriacError, builtins.TimeoutError):
    """An operation (usually ``AsyncResult.get``) ran out of time."""


class TaskError(CeleriacError):
    """Base of the exceptions raised by or about task execution."""


class AlreadyRegistered(TaskError):
    """Celery's name for a task registered twice. Neither Celery nor celeriac raises it:
    ``@app.task`` with a name already registered returns that task."""


class TaskPredicate(TaskError):
    """Base of the exceptions a task raises to say what happens next (``Retry``,
    ``Reject``, ``Ignore``) rather than that it failed."""


class Retry(TaskPredicate):
    """Raised by ``Task.retry()``: the task is re-sent, this run is not a failure."""

    #: The call to re-send (a Signature), set by ``Task.retry()``.
    sig: Any = None

    def __init__(
        self,
        message: str | None = None,
        exc: BaseException | None = None,
        when: Any = None,
        **kwargs: Any,
    ) -> None:
        self.message = message
        self.exc = exc
        self.when = when  # seconds from now (or a datetime) until the retry is due
        super().__init__(message, exc, when, *kwargs.values())

    def humanize(self) -> str:
        if not self.when:
            return "now"
        return f"in {self.when:.2f}s" if isinstance(self.when, (int, float)) else f"at {self.when}"

    def __str__(self) -> str:
        if self.message:
            return self.message
        if self.exc is not None:
            return f"Retry {self.humanize()}: {self.exc!r}"
        return f"Retry {self.humanize()}"

    def __reduce__(self) -> tuple[Any, ...]:
        return self.__class__, (self.message, self.exc, self.when)


class Reject(TaskPredicate):
    """Reject the message: requeue it (``requeue=True``) or send it to the dead letters."""

    def __init__(self, reason: Any = None, requeue: bool = False) -> None:
        self.reason = reason
        self.requeue = requeue
        super().__init__(reason, requeue)

    def __repr__(self) -> str:
        return f"Reject(reason={self.reason!r}, requeue={self.requeue!r})"


class Ignore(TaskPredicate):
    """Stop processing this message: no result is stored, the message is acked."""


class MaxRetriesExceededError(TaskError):
    """``Task.retry()`` was called after ``max_retries`` retries."""

    def __init__(self, *args: Any, task_args: Any = None, task_kwargs: Any = None) -> None:
        self.task_args = task_args
        self.task_kwargs = task_kwargs
        super().__init__(*args)


class TaskRevokedError(TaskError):
    """The task was revoked (or expired) before it could run."""


class ChordError(TaskError):
    """A chord's body did not run because a task of its header failed (or was revoked)."""


class TimeLimitExceeded(TaskError):
    """The hard time limit was reached and the task was killed."""


class WorkerLostError(TaskError):
    """The process running the task died."""


class RemoteTaskError(TaskError):
    """A task failed with an exception type that is not trusted in this process.

    Stored exceptions are data: celeriac never imports a module named by a stored
    record (CVE-2021-23727). ``exc_type`` and ``exc_module`` keep the original names.
    """

    exc_type: str = "RemoteTaskError"
    exc_module: str = "celeriac.exceptions"


class SyncSubtaskError(TaskError, RuntimeError):
    """``result.get()`` was called inside a running task, which can deadlock the workers."""


class IncompleteStream(TaskError):
    """``AsyncResult.collect()``/``iterdeps()`` reached a task that has not finished (pass
    ``intermediate=True`` to walk past it)."""


class SoftTimeLimitExceeded(CeleriacError):
    """Raised inside a task body when its soft time limit passes: save work, then exit."""

    def __str__(self) -> str:
        return "SoftTimeLimitExceeded()"


class QueueNotFound(ImproperlyConfigured, KeyError):
    """A task was routed to a queue that is not declared and cannot be created."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "queue not found"


class CeleryCommandException(click.ClickException):
    """A command's refusal: ``message`` is printed as ``Error: ...`` and the command exits
    with ``exit_code``. celeriac's own commands raise it; so may commands of one's own."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        # click declares exit_code a class default; it is set per instance, as in Celery.
        self.exit_code = exit_code  # type: ignore[misc]


class WorkerShutdown(SystemExit):
    """Raised by a task: its worker shuts down warm (running tasks finish first)."""


class WorkerTerminate(SystemExit):
    """Raised by a task: its worker shuts down cold (running tasks are not waited for)."""


# Celery's older name for WorkerTerminate.
SystemTerminate = WorkerTerminate


# -- warnings: Celery's classes, the base of celeriac's own warnings ---------------------------
class CeleryWarning(UserWarning):
    """Base of the warnings celeriac gives (a setting not in effect, an unknown setting)."""


class NotConfigured(CeleryWarning):
    """Celery's warning that no configuration module was found. celeriac looks none up by
    default (settings come from the app), so it never gives it; kept for filters."""


class FixupWarning(CeleryWarning):
    """A framework fix-up cannot be applied (``DJANGO_SETTINGS_MODULE`` set, no Django)."""


class DuplicateNodenameWarning(CeleryWarning):
    """Two workers answered a remote-control command under one node name (``-n``)."""


class DuplicateTaskNameWarning(CeleryWarning):
    """Two different callables were registered under one task name."""


class AlwaysEagerIgnored(CeleryWarning):
    """``send_task`` sends a message even with ``task_always_eager``: eager mode applies to
    a task's own ``delay``/``apply_async`` only."""


class SecurityWarning(CeleryWarning):
    """A configuration that may be unsafe (Celery's class, kept for projects that filter it)."""


class CPendingDeprecationWarning(PendingDeprecationWarning):
    """Something that will be deprecated in a later release."""


class CDeprecationWarning(DeprecationWarning):
    """Something that is deprecated and will be removed."""


def reraise(tp: type[BaseException], value: BaseException, tb: Any = None) -> None:
    """Raise ``value`` again, with traceback ``tb`` when it is another one."""
    if value.__traceback__ is not tb:
        raise value.with_traceback(tb)
    raise value


__all__ = [
    "AlreadyRegistered",
    "AlwaysEagerIgnored",
    "BackendConnectionError",
    "BackendError",
    "BackendGetMetaError",
    "BackendStoreError",
    "BrokerAccessRefused",
    "BrokerConnectionError",
    "BrokerError",
    "CDeprecationWarning",
    "CPendingDeprecationWarning",
    "CeleriacError",
    "CeleryCommandException",
    "CeleryError",
    "CeleryWarning",
    "ChordError",
    "ContentDisallowed",
    "DecodeError",
    "DuplicateNodenameWarning",
    "DuplicateTaskNameWarning",
    "EncodeError",
    "FixupWarning",
    "GetMetaConnectionLost",
    "Ignore",
    "ImproperlyConfigured",
    "IncompleteStream",
    "InvalidTaskError",
    "MaxRetriesExceededError",
    "MessageTooLarge",
    "NotConfigured",
    "NotRegistered",
    "OperationalError",
    "QueueNotFound",
    "Reject",
    "RemoteTaskError",
    "Retry",
    "SecurityError",
    "SecurityWarning",
    "SerializationError",
    "SoftTimeLimitExceeded",
    "StoreConnectionLost",
    "SyncSubtaskError",
    "SystemTerminate",
    "TaskError",
    "TaskPredicate",
    "TaskRevokedError",
    "TimeLimitExceeded",
    "TimeoutError",
    "WorkerLostError",
    "WorkerShutdown",
    "WorkerTerminate",
    "reraise",
]
