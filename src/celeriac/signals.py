"""Signals: hooks for code that watches tasks and workers (Sentry-style reporters, metrics).

Leaf module: imports nothing from celeriac. Names and keyword arguments follow
Celery's ``celery.signals``. A receiver that raises is logged and the others still run:
an observer must never break the task it observes.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("celeriac.signals")

Receiver = Callable[..., Any]
_ANY = object()


def _make_ref(receiver: Receiver, weak: bool) -> Callable[[], Receiver | None]:
    if not weak:
        return lambda: receiver
    if hasattr(receiver, "__self__") and hasattr(receiver, "__func__"):
        return weakref.WeakMethod(receiver)
    try:
        return weakref.ref(receiver)
    except TypeError:  # builtins and some callables cannot be weakly referenced
        return lambda: receiver


class Signal:
    """A named hook. ``connect`` receivers, ``send`` calls each with ``sender`` and keywords."""

    def __init__(self, name: str, providing_args: frozenset[str] | None = None) -> None:
        self.name = name
        self.providing_args = providing_args or frozenset()
        self._receivers: list[tuple[Any, Any, Callable[[], Receiver | None]]] = []

    def connect(
        self,
        receiver: Receiver | None = None,
        *,
        sender: Any = None,
        weak: bool = True,
        dispatch_uid: Any = None,
    ) -> Any:
        """Connect ``receiver``; usable as ``@sig.connect`` or ``@sig.connect(sender=...)``."""
        if receiver is None:

            def decorator(fn: Receiver) -> Receiver:
                self.connect(fn, sender=sender, weak=weak, dispatch_uid=dispatch_uid)
                return fn

            return decorator
        key = dispatch_uid if dispatch_uid is not None else id(receiver)
        sender_key = _ANY if sender is None else sender
        self._receivers = [r for r in self._receivers if (r[0], r[1]) != (key, sender_key)]
        self._receivers.append((key, sender_key, _make_ref(receiver, weak)))
        return receiver

    def disconnect(
        self, receiver: Receiver | None = None, *, sender: Any = None, dispatch_uid: Any = None
    ) -> bool:
        key = dispatch_uid if dispatch_uid is not None else id(receiver)
        sender_key = _ANY if sender is None else sender
        before = len(self._receivers)
        self._receivers = [r for r in self._receivers if (r[0], r[1]) != (key, sender_key)]
        return len(self._receivers) != before

    def receivers_for(self, sender: Any) -> list[Receiver]:
        live: list[Receiver] = []
        for _key, wanted, ref in list(self._receivers):
            fn = ref()
            if fn is None:
                self._receivers = [r for r in self._receivers if r[2] is not ref]
                continue
            if wanted is _ANY or wanted is sender or wanted == sender:
                live.append(fn)
        return live

    @property
    def has_receivers(self) -> bool:
        return bool(self._receivers)

    def send(self, sender: Any = None, **named: Any) -> list[tuple[Receiver, Any]]:
        """Call every receiver for ``sender``; a receiver's exception is logged, not raised."""
        if not self._receivers:  # hot path: most signals have no receivers
            return []
        responses: list[tuple[Receiver, Any]] = []
        for fn in self.receivers_for(sender):
            try:
                responses.append((fn, fn(signal=self, sender=sender, **named)))
            except Exception as exc:
                logger.exception("Signal handler %r for %r raised: %r", fn, self.name, exc)
                responses.append((fn, exc))
        return responses

    def __repr__(self) -> str:
        return f"<Signal: {self.name}>"


# Producer side
before_task_publish = Signal(
    "before_task_publish"
)  # body, exchange, routing_key, headers, properties, declare, retry_policy
after_task_publish = Signal("after_task_publish")  # body, exchange, routing_key, headers
#: Deprecated in Celery (use ``after_task_publish``); sent for code that still listens to it.
task_sent = Signal("task_sent")  # task_id, task, args, kwargs, eta, taskset

# Execution (trace)
task_received = Signal("task_received")  # request
task_prerun = Signal("task_prerun")  # task_id, task, args, kwargs
task_postrun = Signal("task_postrun")  # task_id, task, args, kwargs, retval, state
task_success = Signal("task_success")  # result, runtime
task_failure = Signal("task_failure")  # task_id, exception, args, kwargs, traceback, einfo
task_retry = Signal("task_retry")  # request, reason, einfo
task_revoked = Signal("task_revoked")  # request, terminated, signum, expired
task_rejected = Signal("task_rejected")  # message, exc
task_unknown = Signal("task_unknown")  # message, exc, name, id
task_internal_error = Signal(
    "task_internal_error"
)  # task_id, args, kwargs, request, exception, traceback, einfo

# Worker lifecycle (fired by the worker runtime)
celeryd_init = Signal("celeryd_init")  # instance, conf, options
celeryd_after_setup = Signal("celeryd_after_setup")  # instance, conf
worker_init = Signal("worker_init")
worker_before_create_process = Signal("worker_before_create_process")
worker_process_init = Signal("worker_process_init")
worker_process_shutdown = Signal("worker_process_shutdown")  # pid, exitcode
worker_ready = Signal("worker_ready")
worker_shutting_down = Signal("worker_shutting_down")  # sig, how, exitcode
worker_shutdown = Signal("worker_shutdown")
heartbeat_sent = Signal("heartbeat_sent")  # each worker event (online, heartbeat, offline)

# Beat (fired by celeriac.beat's Service; sender: the Service)
beat_init = Signal("beat_init")
beat_embedded_init = Signal("beat_embedded_init")

# Logging, app, command line. Celery's eventlet_* are absent on purpose: there is no
# eventlet pool to send them (docs/signals-and-logging.md).
setup_logging = Signal("setup_logging")  # loglevel, logfile, format, colorize
after_setup_logger = Signal("after_setup_logger")  # logger, loglevel, logfile, format, colorize
after_setup_task_logger = Signal("after_setup_task_logger")  # the same
import_modules = Signal("import_modules")
# Sent by every command whose app declares app.user_options['preload'] (sender: the
# command's function): app, options (preload option name -> value).
user_preload_options = Signal("user_preload_options")

__all__ = [
    "Signal",
    "after_setup_logger",
    "after_setup_task_logger",
    "after_task_publish",
    "beat_embedded_init",
    "beat_init",
    "before_task_publish",
    "celeryd_after_setup",
    "celeryd_init",
    "heartbeat_sent",
    "import_modules",
    "setup_logging",
    "task_failure",
    "task_internal_error",
    "task_postrun",
    "task_prerun",
    "task_received",
    "task_rejected",
    "task_retry",
    "task_revoked",
    "task_sent",
    "task_success",
    "task_unknown",
    "user_preload_options",
    "worker_before_create_process",
    "worker_init",
    "worker_process_init",
    "worker_process_shutdown",
    "worker_ready",
    "worker_shutdown",
    "worker_shutting_down",
]
