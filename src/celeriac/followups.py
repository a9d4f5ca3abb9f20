"""What follows a task's end: ``link`` callbacks, the next step of its chain, errbacks,
and the chord its result belongs to.

App core: imports leaves, ``request`` and ``results.base``; sits below ``canvas``. It
reads signatures in their wire form (the dicts that messages carry) and turns one into a
canvas object only through ``app.signature`` when it must send it.

A chord completes by an atomic join in the result backend (``chord_part_done``): every
header task that ends (success or failure) joins; the one that completes the header
reads every result and either applies the body with them, in header order, or fails the
body and calls its errbacks once. Nothing polls.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from celeriac import signals, states
from celeriac.einfo import ExceptionInfo
from celeriac.exceptions import ChordError
from celeriac.request import Request

if TYPE_CHECKING:  # types only: the app and tasks sit above this module
    from celeriac.app.base import Celeriac
    from celeriac.task import Task

logger = logging.getLogger("celeriac.app.trace")


# -- reading the wire form ----------------------------------------------------------------
def _options(sig: Mapping[str, Any]) -> Mapping[str, Any]:
    return sig.get("options") or {}


def _parts(sig: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The signatures a workflow is made of, in order (none for a plain task call)."""
    kwargs = sig.get("kwargs") or {}
    kind = sig.get("subtask_type")
    if kind in ("chain", "group"):
        return list(kwargs.get("tasks") or ())
    if kind == "chord":  # the header is a group
        return [kwargs["header"], kwargs["body"]]
    return []


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, Mapping) else list(value)


def errbacks_of(sig: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The errbacks that fire when ``sig`` fails before it runs (as a chord body can):
    a chain's are its first task's, a chord's its body's, a group's all its members'."""
    kind = sig.get("subtask_type")
    if kind == "chain":
        tasks = _parts(sig)
        return errbacks_of(tasks[0]) if tasks else []
    if kind == "chord":
        return errbacks_of(_parts(sig)[-1])
    found: list[Mapping[str, Any]] = _as_list(_options(sig).get("link_error"))
    for part in _parts(sig) if kind == "group" else ():
        found.extend(e for e in errbacks_of(part) if e not in found)
    return found


def request_for(sig: Mapping[str, Any]) -> Request:
    """The request an errback receives for a task that never ran (a failed chord's body)."""
    options = _options(sig)
    return Request(
        id=options.get("task_id"),
        task=sig.get("task"),
        args=tuple(sig.get("args") or ()),
        kwargs=dict(sig.get("kwargs") or {}),
        called_directly=False,
        group=options.get("group_id"),
        group_index=options.get("group_index"),
        root_id=options.get("root_id"),
        parent_id=options.get("parent_id"),
        errbacks=_as_list(options.get("link_error")) or None,
        reply_to=options.get("reply_to"),
        correlation_id=options.get("task_id"),
    )


# -- callbacks and errbacks ---------------------------------------------------------------
def report_link_error(sender: Any, request: Request, link: Any, exc: Exception) -> None:
    # A broken callback must not turn a finished task into a crash: log it and go on.
    logger.error(
        "Task %s[%s]: could not apply %r: %r", request.task, request.id, link, exc, exc_info=exc
    )
    signal_internal_error(sender, request, exc)


def signal_internal_error(sender: Any, request: Request, exc: Exception) -> ExceptionInfo:
    """Fire ``task_internal_error``: celeriac's own bookkeeping failed around a task."""
    einfo = ExceptionInfo(exc)
    signals.task_internal_error.send(
        sender=sender,
        task_id=request.id,
        args=request.args,
        kwargs=request.kwargs,
        request=request,
        exception=exc,
        traceback=einfo.tb,
        einfo=einfo,
    )
    return einfo


def freeze_callbacks(app: Celeriac, request: Request) -> None:
    """Before a success is stored: fix the ids of the calls it will send (``link``
    callbacks, the chain's next step) and record them as the call's ``children``, so
    the stored result lists them, as Celery's does. One that cannot be read is left for
    ``apply_callbacks`` to report."""
    callbacks, chain = request.callbacks or [], request.chain or []
    steps = [(callbacks, index) for index in range(len(callbacks))]
    if chain:
        steps.append((chain, len(chain) - 1))  # the chain travels reversed: next is last
    for holder, index in steps:
        try:
            sig = app.signature(holder[index])
            request.children.append(sig.freeze())
        except Exception:
            continue
        holder[index] = sig  # sent as frozen: the id recorded is the id it runs with


def apply_callbacks(app: Celeriac, request: Request, retval: Any, sender: Any = None) -> None:
    """After a success: ``link`` callbacks, the chain's next step, the chord's join.
    They were recorded as children already (``freeze_callbacks``), not again here."""
    for raw in request.callbacks or ():
        try:  # an immutable signature ignores the result it is given
            app.signature(raw).apply_async((retval,), add_to_parent=False)
        except Exception as exc:
            report_link_error(sender, request, raw, exc)
    if request.chain:
        remaining = list(request.chain)
        following = remaining.pop()  # the chain travels reversed: the next step is last
        try:
            app.signature(following).apply_async(
                (retval,), chain=remaining or None, add_to_parent=False
            )
        except Exception as exc:
            report_link_error(sender, request, following, exc)
    if request.chord:
        join_chord(app, request, sender=sender)


def _accepts_request_first(task: Task[..., Any]) -> bool:
    """New-style errbacks (more than one parameter) take ``(request, exc, traceback)``;
    old-style ones take the failed task's id, as in Celery."""
    try:
        params = inspect.signature(task.run).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) > 1 or any(p.kind is p.VAR_POSITIONAL for p in params)


def call_errbacks(
    app: Celeriac,
    request: Request,
    errbacks: Any,
    exc: BaseException,
    tb_text: str | None,
    sender: Any = None,
) -> None:
    """Call each errback once: a new-style one here and now with ``(request, exc,
    traceback)``, an old-style one sent with the failed task's id."""
    for raw in errbacks or ():
        try:
            sig = app.signature(raw)
            errback_task = app.tasks.get(sig.task)
            if errback_task is not None and _accepts_request_first(errback_task):
                errback_task(request, exc, tb_text, *sig.args, **sig.kwargs)
            else:
                sig.apply_async((request.id,))
        except Exception as error:
            report_link_error(sender, request, raw, error)


def after_failure(
    app: Celeriac, request: Request, exc: BaseException, tb_text: str | None, sender: Any = None
) -> None:
    """After a failure: errbacks, then what can no longer run fails with the same error."""
    call_errbacks(app, request, request.errbacks, exc, tb_text, sender)
    abandon(app, request, exc, tb_text, sender)


def abandon(
    app: Celeriac, request: Request, exc: BaseException, tb_text: str | None, sender: Any = None
) -> None:
    """The task ended without a result to pass on (failed, revoked, expired, lost): the
    rest of its chain is recorded as failed with ``exc`` instead of staying PENDING, and
    its chord counts it, so the chord's errbacks fire instead of the chord hanging."""
    for raw in reversed(request.chain or ()):
        _fail(app, raw, exc, tb_text, sender=sender)
    if request.chord:
        join_chord(app, request, sender=sender)


def _fail(
    app: Celeriac,
    sig: Mapping[str, Any],
    exc: BaseException,
    tb_text: str | None,
    join: bool = True,
    sender: Any = None,
) -> None:
    """Record every result ``sig`` would have produced as failed with ``exc``; a chord
    member also joins its chord (``join``), unless its chord was never sent."""
    parts = _parts(sig)
    if sig.get("subtask_type") == "chord":  # never sent: its header has no chord to join
        _fail(app, parts[0], exc, tb_text, False, sender)
        return _fail(app, parts[1], exc, tb_text, join, sender)
    for part in parts:
        _fail(app, part, exc, tb_text, join, sender)
    if parts:
        return None
    options = _options(sig)
    task_id = options.get("task_id")
    if task_id is None:
        return
    try:
        request = request_for(sig)  # rpc:// sends the state to the caller it names
        app.backend.store_result(task_id, exc, states.FAILURE, traceback=tb_text, request=request)
    except Exception as error:
        logger.warning("could not record that %s will not run: %r", task_id, error)
    for raw in reversed(_as_list(options.get("chain"))):
        _fail(app, raw, exc, tb_text, join, sender)
    if join and options.get("chord") and options.get("group_id"):
        join_chord(app, request_for(sig), body=options["chord"], sender=sender)
    return None


# -- chords -------------------------------------------------------------------------------
def join_chord(
    app: Celeriac, request: Request, body: Mapping[str, Any] | None = None, sender: Any = None
) -> None:
    """Count this header task as ended; the one that completes the header ends the chord."""
    body = body if body is not None else request.chord
    group_id = request.group
    if not body or not group_id or request.id is None:
        return
    size = int(body.get("chord_size") or 0)
    try:
        if app.backend.chord_part_done(group_id, request.id, size):
            complete_chord(app, group_id, body, sender)
    except Exception as exc:  # the backend is down: logged; the message is still acked
        report_link_error(sender, request, body, exc)


def _flat(ids: Any) -> Iterator[str]:
    for item in ids:
        if isinstance(item, str):
            yield item
        else:  # a nested group, saved as [group_id, [members]]
            yield from _flat(item[1])


def complete_chord(
    app: Celeriac, group_id: str, body: Mapping[str, Any], sender: Any = None
) -> None:
    """Apply the body with the header's results in header order, or fail it once."""
    backend = app.backend
    saved = backend.restore_group(group_id)
    if saved is None:
        error = ChordError(f"the header of chord {group_id} is no longer in the result backend")
        return fail_chord(app, body, error, sender=sender)
    ids = backend.chord_members(group_id, list(_flat(saved)))  # with add_to_chord's tasks
    values = []
    for task_id, meta in zip(ids, backend.get_many_meta(ids), strict=True):
        if meta["status"] != states.SUCCESS:
            reason = meta["result"] if meta["status"] in states.READY_STATES else meta["status"]
            error = ChordError(f"Dependency {task_id} raised {reason!r}")
            return fail_chord(app, body, error, sender=sender)
        values.append(meta["result"])
    app.signature(body).apply_async((values,))
    return None


def fail_chord(
    app: Celeriac,
    body: Mapping[str, Any],
    exc: ChordError,
    *,
    store: bool = True,
    sender: Any = None,
) -> None:
    """The body will not run: its errbacks get ``exc`` once, its result records it."""
    body_id = _options(body).get("task_id")
    logger.error("Chord body %s[%s] not run: %s", body.get("task"), body_id, exc)
    call_errbacks(app, request_for(body), errbacks_of(body), exc, None, sender)
    if store:
        _fail(app, body, exc, None, sender=sender)
