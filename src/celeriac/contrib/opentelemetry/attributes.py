"""Span names and attributes: OpenTelemetry's messaging conventions and Celery's own keys.

Pure functions of a call's options or a request; imports nothing from OpenTelemetry.
Names follow opentelemetry-instrumentation-celery (``apply_async/<task>``, ``run/<task>``,
``celery.action``, ``celery.task_name``), so dashboards built on Celery's spans keep working.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celeriac.request import Request
    from celeriac.task import Task
    from celeriac.trace import Outcome

SYSTEM = "celeriac"
BATCH_SPAN = "apply_async/group"

# OpenTelemetry's messaging conventions.
MESSAGING_SYSTEM = "messaging.system"
OPERATION_TYPE = "messaging.operation.type"
OPERATION_NAME = "messaging.operation.name"
DESTINATION = "messaging.destination.name"
MESSAGE_ID = "messaging.message.id"
CONVERSATION_ID = "messaging.message.conversation_id"
BATCH_COUNT = "messaging.batch.message_count"
ERROR_TYPE = "error.type"

# Celery's keys, as its instrumentation writes them.
ACTION = "celery.action"
TASK_NAME = "celery.task_name"
HOSTNAME = "celery.hostname"
RETRIES = "celery.retries"
STATE = "celery.state"
COUNTDOWN = "celery.countdown"
ETA = "celery.eta"
PRIORITY = "celery.priority"
RETRY_REASON = "celery.retry.reason"
# Ours: how many times the broker has handed this message out.
DELIVERY_COUNT = "celeriac.delivery_count"

Attributes = dict[str, str | int | float]


def publish_name(task_name: str) -> str:
    return f"apply_async/{task_name}"


def run_name(task_name: str) -> str:
    return f"run/{task_name}"


def batch(count: int) -> Attributes:
    return {MESSAGING_SYSTEM: SYSTEM, OPERATION_TYPE: "send", BATCH_COUNT: count}


def publish(name: str, task_id: str, queue: str, options: Mapping[str, Any]) -> Attributes:
    """A send's attributes, from the routed call options."""
    found: Attributes = {
        MESSAGING_SYSTEM: SYSTEM,
        OPERATION_TYPE: "send",
        OPERATION_NAME: "send",
        DESTINATION: queue,
        MESSAGE_ID: task_id,
        ACTION: "apply_async",
        TASK_NAME: name,
    }
    if options.get("retries"):
        found[RETRIES] = int(options["retries"])
    if options.get("countdown") is not None:
        found[COUNTDOWN] = float(options["countdown"])
    if options.get("eta") is not None:
        eta = options["eta"]
        found[ETA] = eta if isinstance(eta, str) else eta.isoformat()
    if options.get("priority") is not None:
        found[PRIORITY] = int(options["priority"])
    return found


def run(task: Task[..., Any], request: Request) -> Attributes:
    """An execution's attributes, known before it starts."""
    found: Attributes = {
        MESSAGING_SYSTEM: SYSTEM,
        OPERATION_TYPE: "process",
        OPERATION_NAME: "process",
        ACTION: "run",
        TASK_NAME: str(task.name),
    }
    if request.id is not None:
        found[MESSAGE_ID] = request.id
    queue = request.delivery_info.get("routing_key")
    if queue:
        found[DESTINATION] = str(queue)
    if request.correlation_id:
        found[CONVERSATION_ID] = request.correlation_id
    if request.hostname:
        found[HOSTNAME] = request.hostname
    if request.retries:
        found[RETRIES] = request.retries
    if request.delivery_count > 1:
        found[DELIVERY_COUNT] = request.delivery_count
    return found


def ended(outcome: Outcome) -> Attributes:
    """What an execution's outcome adds: its state, and a retry's reason."""
    found: Attributes = {STATE: outcome.state}
    if outcome.retry is not None:
        reason = outcome.retry.exc if outcome.retry.exc is not None else outcome.retry
        found[RETRY_REASON] = str(reason)
    return found


def error_type(exc: BaseException) -> str:
    cls = type(exc)
    return (
        cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    )
