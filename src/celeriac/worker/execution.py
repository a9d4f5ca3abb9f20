"""From a ``Delivery`` to a settled message: decode, check, run through ``trace``, settle.

Input never crashes this code: a payload that cannot be decoded, is not signed as the app
requires (``bad_signature``), has a field of the wrong type or value, names an unknown task
or uses a refused content type goes to the dead letters with the reason, and the caller
carries on; so does a message whose handling failed in the worker itself (``bury``).
Whenever a message goes to the dead letters without its call having ended, whoever waits
on the call is told (``endings.refused``, ``endings.given_up``): its result records the
failure and its errbacks, chain and chord learn of it, as far as the message can be read.
``prepare`` and ``settle`` are separate because a pool runs ``trace`` in between, possibly
in another process.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.brokers.base import DeadLetterReason, Delivery
from celeriac.canvas import signature
from celeriac.exceptions import (
    BrokerError,
    CeleriacError,
    ContentDisallowed,
    DecodeError,
    InvalidTaskError,
    MessageTooLarge,
    NotRegistered,
    Reject,
    Retry,
    SecurityError,
    TimeLimitExceeded,
    WorkerShutdown,
    WorkerTerminate,
)
from celeriac.messages.envelope import Message
from celeriac.messages.protocol import TaskBody, decode_task_body
from celeriac.messages.serializers import resolve_accept
from celeriac.messages.validation import (
    HEADER_RULES,
    PROPERTY_RULES,
    check_envelope,
    parse_iso,
    valid_fields,
)
from celeriac.request import Request
from celeriac.trace import Outcome, OutcomeKind, trace_task
from celeriac.worker import endings

if TYPE_CHECKING:  # types only: the app and tasks sit above the worker's seams
    from celeriac.app.base import Celeriac
    from celeriac.task import Task

logger = logging.getLogger("celeriac.worker")


@dataclass(slots=True)
class Job:
    """A task call to run: what trace and a pool need. A prefork child rebuilds one from
    the payload it is sent; it has no delivery to settle."""

    task: Task[..., Any]
    request: Request
    #: The task id (every message carries one: the envelope is checked on receipt); kept,
    #: as the consumer and its listeners ask for it several times per task.
    id: str = field(init=False)

    def __post_init__(self) -> None:
        self.id = str(self.request.id)


@dataclass(slots=True)
class HeldJob(Job):
    """A job the consumer holds: its delivery is settled with the job's outcome."""

    delivery: Delivery
    custom: Any = None  # its Task.Request instance when a subclass (worker.request)


@dataclass(slots=True)
class Refusal:
    """A delivery that cannot run, and why (it goes to the dead letters)."""

    delivery: Delivery
    reason: DeadLetterReason
    detail: str
    error: Exception | None = None  # recorded as the task's failure when its id is known
    task_id: str | None = None
    # What could still be read of the call (its errbacks, chain, chord), to tell them.
    request: Request | None = None


def prepare(
    app: Celeriac, delivery: Delivery, hostname: str | None = None, consumer: Any = None
) -> HeldJob | Refusal:
    """A ``Job``, or the ``Refusal`` saying why the message cannot run. Every field is
    checked (``messages.validation``: headers and properties, then the body and the canvas
    it embeds) before anything acts on it; the task lookup comes between the two.

    ``consumer`` is the sender of ``task_rejected`` and ``task_unknown``, as in Celery:
    ``task_rejected`` for a message that is not a task message (``exc=None``, ``message``
    the delivery) or an invalid one (``exc`` the ``InvalidTaskError``)."""
    max_size = app.conf.task_message_max_size
    if max_size is not None and len(delivery.payload) > max_size:
        return oversized(delivery, max_size)
    try:
        message = delivery.broker.wire_format.decode(delivery.payload)
    except DecodeError as exc:
        signals.task_rejected.send(sender=consumer, message=delivery, exc=None)
        return Refusal(delivery, DeadLetterReason.MALFORMED, str(exc))
    try:  # before anything else reads it: nothing of a forged message is acted on
        message, accept = opened(app, message)
    except SecurityError as exc:
        return Refusal(delivery, DeadLetterReason.BAD_SIGNATURE, str(exc))
    try:
        check_envelope(message.headers, message.properties)
    except InvalidTaskError as exc:
        signals.task_rejected.send(sender=consumer, message=message, exc=exc)
        request = readable(message, delivery, accept, max_size)
        return Refusal(delivery, DeadLetterReason.MALFORMED, str(exc), exc, message.id, request)
    try:
        task = app.tasks[message.task_name]
    except NotRegistered as exc:
        signals.task_unknown.send(
            sender=consumer, message=message, exc=exc, name=message.task_name, id=message.id
        )
        request = readable(message, delivery, accept, max_size)
        reason = DeadLetterReason.UNKNOWN_TASK
        return Refusal(delivery, reason, str(exc), exc, message.id, request)
    try:
        body = decode_task_body(message, accept, max_size)
    except (ContentDisallowed, DecodeError) as exc:
        if isinstance(exc, ContentDisallowed):
            reason = DeadLetterReason.CONTENT_DISALLOWED
        elif isinstance(exc, MessageTooLarge):
            reason = DeadLetterReason.OVERSIZED
        else:
            reason = DeadLetterReason.MALFORMED
            if isinstance(exc, InvalidTaskError):  # a body that could not be read: no signal
                signals.task_rejected.send(sender=consumer, message=message, exc=exc)
        request = readable(message, delivery)  # the body cannot be read: the headers can
        return Refusal(delivery, reason, str(exc), exc, message.id, request)
    request = Request.from_message(
        message,
        body,
        queue=delivery.queue,
        hostname=hostname,
        delivery_count=delivery.delivery_count,
    )
    return HeldJob(task, request, delivery)


def readable(
    message: Message,
    delivery: Delivery,
    accept: frozenset[str] | None = None,
    max_size: int | None = None,
) -> Request:
    """What a refused message still says about its call, to tell those waiting on it: the
    headers and properties that are valid, and the body (its errbacks, chain and chord)
    when ``accept`` is given and it reads as it should. A body that cannot be read leaves
    only the call's id and headers."""
    kept = dataclasses.replace(
        message,
        headers=valid_fields(message.headers, HEADER_RULES),
        properties=valid_fields(message.properties, PROPERTY_RULES),
    )
    body = TaskBody((), {}, {})
    if accept is not None:
        with contextlib.suppress(ContentDisallowed, DecodeError):  # headers only, then
            body = decode_task_body(kept, accept, max_size)
    return Request.from_message(
        kept, body, queue=delivery.queue, delivery_count=delivery.delivery_count
    )


def oversized(delivery: Delivery, max_size: int) -> Refusal:
    """A payload over this worker's limit, refused unread (parsing it is what the limit
    guards against). The broker's message id is the task id our producers set, so a
    caller waiting on the result learns why."""
    detail = (
        f"the message is {len(delivery.payload)} bytes, over this worker's limit of "
        f"{max_size} bytes (setting task_message_max_size): refused unread. Send large data "
        f"by reference (store it, pass its key), or raise the limit on producers and workers."
    )
    error = MessageTooLarge(detail)
    return Refusal(delivery, DeadLetterReason.OVERSIZED, detail, error, delivery.message_id or None)


def job_from_payload(
    app: Celeriac, payload: bytes, queue: str, delivery_count: int, hostname: str | None
) -> Job:
    """Rebuild a job in another process (a prefork child) from what crossed the pipe.

    The main process already decoded this payload once, so it is known to be valid.
    """
    message, accept = opened(app, app.broker.wire_format.decode(payload))
    body = decode_task_body(message, accept)
    request = Request.from_message(
        message, body, queue=queue, hostname=hostname, delivery_count=delivery_count
    )
    return Job(app.tasks[message.task_name], request)


def opened(app: Celeriac, message: Message) -> tuple[Message, frozenset[str]]:
    """The message to decode and the content types its body may be in. With signing on,
    its signature is verified first (``SecurityError`` when missing or bad), so a pickled
    body, even where ``accept_content`` names pickle, is read only once it verified."""
    accept = resolve_accept(app.conf.accept_content)
    signer = app.signer
    if signer is None:
        return message, accept
    verified = signer.verify(message)
    return verified.message, accept | verified.trusted


def outcome_to_wire(outcome: Outcome, result_limit: int = 1024) -> dict[str, Any]:
    """What a child process sends back: plain, picklable data (exceptions as text, the
    result as its repr, of up to ``result_limit`` characters: the task's
    ``resultrepr_maxsize``)."""
    retry = outcome.retry
    return {
        "kind": outcome.kind.value,
        "state": outcome.state,
        "retval": _short_repr(outcome.retval, result_limit),
        "exc": None if outcome.exc is None else _short_repr(outcome.exc),
        "reason": _short_repr(getattr(outcome.exc, "reason", None)),
        "requeue": outcome.requeue,
        "runtime": outcome.runtime,
        "traceback": outcome.traceback,
        "retry_sig": None if retry is None or retry.sig is None else dict(retry.sig),
        "retry_when": None if retry is None else retry.when,
        "retry_exc": None if retry is None or retry.exc is None else _short_repr(retry.exc),
        # WorkerShutdown / WorkerTerminate: which, and its exit code, for the main process.
        "stop": None if outcome.kind is not OutcomeKind.SHUTDOWN else _stop_to_wire(outcome.exc),
    }


def _stop_to_wire(exc: BaseException | None) -> tuple[bool, Any]:
    code = exc.code if isinstance(exc, SystemExit) else None
    return isinstance(exc, WorkerTerminate), code if isinstance(code, int | None) else str(code)


def outcome_from_wire(app: Celeriac, wire: dict[str, Any]) -> Outcome:
    """The main process's view of a child's outcome (enough to log and settle it)."""
    retry = None
    if wire["retry_sig"] is not None:
        reason = wire.get("retry_exc")
        retry = Retry(
            exc=None if reason is None else RemoteOutcome(reason, ""), when=wire["retry_when"]
        )
        retry.sig = signature(wire["retry_sig"], app=app)
    exc: BaseException | None = None
    if wire.get("stop") is not None:  # the child's task asked the worker to stop
        cold, code = wire["stop"]
        exc = (WorkerTerminate if cold else WorkerShutdown)(code)
    elif wire["exc"] is not None:
        exc = RemoteOutcome(wire["exc"], wire["reason"])
    return Outcome(
        OutcomeKind(wire["kind"]),
        wire["state"],
        retval=wire["retval"],
        exc=exc,
        traceback=wire.get("traceback"),
        runtime=wire["runtime"],
        retry=retry,
        requeue=wire["requeue"],
    )


class RemoteOutcome(Exception):
    """An exception raised in a child process, as text (it was recorded there)."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text)
        self.reason = reason

    def __repr__(self) -> str:
        return str(self.args[0])


def _short_repr(value: Any, limit: int = 1024) -> str:
    return short_repr(repr(value), limit)


def short_repr(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, ending in ``...`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def is_expired(request: Request, now: dt.datetime | None = None) -> bool:
    if not request.expires:
        return False
    expires = parse_iso(request.expires)  # a valid ISO 8601 string: prepare checked it
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=dt.timezone.utc)
    return (now or dt.datetime.now(dt.timezone.utc)) >= expires


#: How far ahead of its eta a message may arrive and still run: the broker rounds delays
#: up, so only a message no broker delayed (a Celery producer's) arrives earlier.
ETA_TOLERANCE = 0.01


def seconds_to_eta(request: Request, now: dt.datetime | None = None) -> float:
    """Seconds until ``request``'s eta, when it arrived before it (a producer that sent it
    at once, leaving the wait to the worker, as Celery's does); else 0.0."""
    if not request.eta:
        return 0.0
    try:
        eta = parse_iso(request.eta)  # checked on receipt; a bad one never got here
    except (TypeError, ValueError):
        return 0.0
    if eta.tzinfo is None:
        eta = eta.replace(tzinfo=dt.timezone.utc)  # a naive eta is UTC, as in Celery
    left = (eta - (now or dt.datetime.now(dt.timezone.utc))).total_seconds()
    return left if left > ETA_TOLERANCE else 0.0


def run(job: Job) -> Outcome:
    """Run one job here (threads, solo and prefork children all come through here)."""
    return precheck(job) or trace_task(job.task, job.request)


def precheck(job: Job) -> Outcome | None:
    """The outcome of a job that must not run (expired, or already succeeded), or None."""
    if is_expired(job.request):
        return endings.expired(job)
    if already_succeeded(job):
        logger.info("Task %s[%s] already succeeded: not run again", job.task.name, job.request.id)
        return Outcome(OutcomeKind.IGNORE, states.SUCCESS)
    if another_copy_claimed(job):
        logger.info("Task %s[%s] is a second copy from the outbox: not run", job.task.name, job.id)
        return Outcome(OutcomeKind.IGNORE, states.SUCCESS)
    return None


def another_copy_claimed(job: Job) -> bool:
    """An outbox message (its idempotency key is ``outbox:<task id>``) claims its task id
    on its first delivery and first try; a copy the relay published again finds the
    claim taken and is acked without running. A redelivery (a worker died running it)
    and a retry run as usual. Engines without key-value state (RabbitMQ) cannot claim:
    there a copy published twice may run twice."""
    request, task_id = job.request, job.id
    key = request.idempotency_key
    if key is None or key != f"outbox:{task_id}":  # (most calls have no key at all)
        return False
    if request.delivery_count > 1 or request.retries:
        return False
    broker = job.task.app.broker
    if not broker.supports_key_value:
        return False
    ttl = float(job.task.app.conf.outbox_claim_ttl)
    try:
        held = broker.reserve(f"outbox-run:{task_id}", task_id, ttl)
    except CeleriacError:  # the broker is down: run it (at-least-once)
        return False
    return held is not None


def already_succeeded(job: Job) -> bool:
    """A redelivered message whose task already succeeded is acked without running: with
    an idempotency key, or for every task with ``worker_deduplicate_successful_tasks``."""
    request = job.request
    if request.delivery_count < 2:
        return False
    conf = job.task.app.conf
    if not (request.idempotency_key or conf.worker_deduplicate_successful_tasks):
        return False
    try:
        return bool(job.task.backend.get_task_meta(job.id)["status"] == states.SUCCESS)
    except CeleriacError:  # no result backend, or it is down: run it (at-least-once)
        return False


async def refuse(app: Celeriac, refusal: Refusal) -> None:
    """Dead-letter the message. When its task id is known, first record the failure, so
    that ``AsyncResult.get()`` raises the reason instead of waiting forever, and tell its
    errbacks, chain and chord (``tell_refused``): told first, a dead letter that cannot be
    written brings the message back to be refused again, not a call nobody hears of."""
    logger.error(
        "Message %s from queue %r dead-lettered (%s): %s",
        refusal.delivery.message_id,
        refusal.delivery.queue,
        refusal.reason.value,
        refusal.detail,
    )
    # Off the event loop: a slow result store must not stall lease heartbeats.
    await asyncio.to_thread(tell_refused, app, refusal)
    await refusal.delivery.dead_letter(refusal.reason, refusal.detail)


def tell_refused(app: Celeriac, refusal: Refusal) -> None:
    """Record a refused call's failure and tell what follows it (when its id is known)."""
    if refusal.task_id is None or refusal.error is None:
        return  # not a message, or not one to trust (a bad signature): nobody to tell
    request = refusal.request or Request(id=refusal.task_id, called_directly=False)
    endings.refused(app, request, refusal.error)


async def bury(delivery: Delivery, exc: Exception, job: Job | None = None) -> None:
    """Handling the message failed in the worker itself, not in its task: settle it once,
    as an ``internal_error`` dead letter naming the error, so that it is neither held nor
    handed out again and again. A delivery already settled is fenced (nothing changes).
    A broker error is left to the lease, which brings the message back, and the delivery
    limit ends it; so is a dead letter that cannot be written."""
    logger.error("Unexpected error handling message %s", delivery.message_id, exc_info=exc)
    if isinstance(exc, BrokerError):
        return
    detail = _short_text(f"internal error: {type(exc).__name__}: {exc}")
    try:
        buried = await delivery.dead_letter(DeadLetterReason.INTERNAL_ERROR, detail)
    except Exception as error:
        logger.error(
            "could not dead-letter message %s (%r): its lease brings it back, and the "
            "delivery limit ends it", delivery.message_id, error,
        )  # fmt: skip
        return
    if not buried:
        return
    logger.error(
        "Message %s from queue %r dead-lettered (%s): %s",
        delivery.message_id, delivery.queue, DeadLetterReason.INTERNAL_ERROR.value, detail,
    )  # fmt: skip
    if job is not None:  # it will not run again (unless replayed): tell those waiting,
        # unless it had ended already (the error came after the task's own end)
        await asyncio.to_thread(endings.given_up, job, exc, signal=False)


def _short_text(text: str, limit: int = 1024) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def acks_failure(job: Job, exc: BaseException | None) -> bool:
    """Whether a failed task's message is acked (the default): ``acks_on_timeout`` for a
    hard time limit, ``acks_on_failure`` otherwise, each falling back to
    ``acks_on_failure_or_timeout``. Not acked, a failure is rejected without a requeue
    (here: the dead letters) and a timeout is requeued, as in Celery 5.7."""
    timeout = isinstance(exc, TimeLimitExceeded)
    return bool(job.task.resolve("acks_on_timeout" if timeout else "acks_on_failure"))


async def _requeue(delivery: Delivery, what: str, reason: str) -> bool:
    """Back to the queue with the delivery counted; at the limit, to the dead letters."""
    if delivery.delivery_count >= delivery.broker.delivery_limit:
        detail = f"{what} on {delivery.delivery_count} deliveries: {reason}"
        return await delivery.dead_letter(DeadLetterReason.DELIVERY_LIMIT, detail)
    return await delivery.requeue(count_delivery=True)


async def _unacked_failure(job: HeldJob, exc: BaseException | None) -> bool:
    """A failure whose message is not acked: a timeout runs again, a failure is buried.
    Logged once settled, so the log line means the message has moved."""
    name, task_id, delivery = job.task.name, job.request.id, job.delivery
    if isinstance(exc, TimeLimitExceeded):
        last = delivery.delivery_count >= delivery.broker.delivery_limit
        applied = await _requeue(delivery, "timed out", repr(exc))
        where = "the dead letters (delivery limit)" if last else "its queue again"
        logger.info("Task %s[%s] timed out: its message went to %s (acks_on_timeout is off)",
                    name, task_id, where)  # fmt: skip
        return applied
    applied = await delivery.dead_letter(DeadLetterReason.FAILED, _short_repr(exc))
    logger.info(
        "Task %s[%s] failed: its message went to the dead letters (acks_on_failure is off)",
        name, task_id,
    )  # fmt: skip
    return applied


async def _settle_rejected(job: HeldJob, outcome: Outcome) -> bool:
    """``Reject``: to the dead letters, or requeued (counted) until the delivery limit
    sends it there; once it is in the dead letters, those waiting on the call are told."""
    delivery = job.delivery
    reason = repr(getattr(outcome.exc, "reason", None))
    if not outcome.requeue:
        applied = await delivery.dead_letter(DeadLetterReason.REJECTED, reason)
    else:
        last = delivery.delivery_count >= delivery.broker.delivery_limit
        applied = await _requeue(delivery, "rejected with requeue", reason)
        if not last:
            return applied  # it runs again
    if applied:
        await tell_rejected(job, outcome)
    return applied


async def tell_rejected(job: Job, outcome: Outcome) -> None:
    """A rejected call that will not run again: FAILURE with the ``Reject``, then its
    errbacks, chain and chord (trace tells nothing for a ``Reject``)."""
    exc = outcome.exc
    if not isinstance(exc, Reject):  # from a prefork child: rebuilt from its text
        exc = Reject(getattr(exc, "reason", None), requeue=outcome.requeue)
    await asyncio.to_thread(endings.given_up, job, exc, signal=False)


async def settle(job: HeldJob, outcome: Outcome) -> bool:
    """Apply the outcome to the message; False when the lease was lost (nothing applied)."""
    delivery = job.delivery
    if outcome.kind is OutcomeKind.RETRY and outcome.retry is not None:
        # Publish the retry before acking: a crash between the two repeats, never loses.
        # Off the event loop, like every other blocking call the consumer makes.
        await asyncio.to_thread(outcome.retry.sig.apply_async)
    if outcome.kind is OutcomeKind.REJECT:
        return await _settle_rejected(job, outcome)
    if outcome.kind is OutcomeKind.FAILURE and not acks_failure(job, outcome.exc):
        return await _unacked_failure(job, outcome.exc)
    # The job has run and nothing waits on this ack: the broker may batch it with others.
    applied = await delivery.ack(batch=True)
    if not applied:
        logger.warning(
            "Task %s[%s]: lease lost before ack; another worker owns the message now",
            job.task.name,
            job.request.id,
        )
    return applied
