"""Worker, beat and retry actions and the beat entries, for the API and the pages.

Runtime layer (dashboard). Workers are told through ``app.control`` (shutdown, pool
grow/shrink, add/cancel consumer, with the replies that arrive within a second); beat's
entries come from ``app.beat`` (``beat_schedule`` merged with the live changes) with the
latest run from beat's state in the broker, and change through ``app.beat`` too. Broker
calls run under the dashboard's broker lock, off the server's event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any, cast

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from celeriac import states
from celeriac.app.beat_entries import decode_schedule
from celeriac.beat import state as beat_state
from celeriac.dashboard.api import board_of, done, failed, read_body
from celeriac.dashboard.queries import Dashboard

REPLY_TIMEOUT = 1.0  # seconds to collect the workers' replies
WORKER_ACTIONS = ("shutdown", "pool-grow", "pool-shrink", "add-consumer", "cancel-consumer")


def beat_entries(board: Dashboard) -> list[dict[str, Any]]:
    """Each periodic task with its schedule, whether it is enabled, its last and next run."""
    with board.broker_lock:
        entries = board.app.beat.entries()
        loaded: Any = beat_state.load(board.app.broker)
    # The latest due time per entry (with the runs in flight too, in newer state records).
    last: dict[str, datetime] = loaded[0] if isinstance(loaded, tuple) else loaded
    rows = []
    now = datetime.now(timezone.utc)
    for name, fields in sorted(entries.items()):
        spec = fields.get("schedule") or {}
        previous = last.get(name)
        try:
            upcoming: datetime | None = decode_schedule(spec).due_after(previous or now)
        except (KeyError, TypeError, ValueError):
            upcoming = None
        rows.append({
            "name": name, "task": fields.get("task"), "schedule": spec,
            "enabled": fields.get("enabled", True) is not False,
            "args": fields.get("args", []), "kwargs": fields.get("kwargs", {}),
            "last_run": previous.timestamp() if previous else None,
            "next_run": upcoming.timestamp() if upcoming else None,
        })  # fmt: skip
    return rows


def api_beat(request: Request) -> Response:
    """
    summary: Beat's periodic tasks with their schedule, enabled flag, last and next run.
    responses:
      200: {description: The entries.}
    """
    return JSONResponse({"entries": beat_entries(board_of(request))})


async def api_beat_action(request: Request) -> Response:
    """
    summary: Enable, disable or run now (action enable|disable|run-now) a periodic task.
    responses:
      200: {description: Done; run-now gives the task id sent.}
      404: {description: No such entry or action.}
    """
    board = board_of(request)
    name, action = request.path_params["name"], request.path_params["action"]
    calls: dict[str, Callable[[str], Any]] = {
        "enable": board.app.beat.enable, "disable": board.app.beat.disable,
        "run-now": board.app.beat.run_now,
    }  # fmt: skip
    if action not in calls:
        return failed(request, 404, f"no beat action {action!r}: one of {', '.join(calls)}")

    def act() -> Any:
        with board.broker_lock:
            if name not in board.app.beat.entries():
                raise LookupError(name)
            return calls[action](name)

    try:
        outcome = await run_in_threadpool(act)
    except LookupError:
        return failed(request, 404, f"no periodic task {name!r}")
    if action == "run-now":
        return done(request, f"Sent {name} now (task {outcome}).", task_id=outcome)
    return done(request, f"{name} {action}d.")


async def api_worker_action(request: Request) -> Response:
    """
    summary: Tell one worker to shutdown, pool-grow or pool-shrink (body n), add-consumer or
      cancel-consumer (body queue).
    responses:
      200: {description: Sent, with the replies that arrived within a second.}
      400: {description: A bad parameter.}
      404: {description: No such action.}
    """
    board = board_of(request)
    hostname, action = request.path_params["hostname"], request.path_params["action"]
    if action not in WORKER_ACTIONS:
        return failed(request, 404, f"no worker action {action!r}: one of "
                                     f"{', '.join(WORKER_ACTIONS)}")  # fmt: skip
    try:
        body = await read_body(request)
        call = _worker_call(board, action, body)
    except ValueError as exc:
        return failed(request, 400, str(exc))

    def act() -> Any:
        with board.broker_lock:
            return call(destination=[hostname], reply=action != "shutdown",
                        timeout=REPLY_TIMEOUT)  # fmt: skip

    replies = await run_in_threadpool(act)
    return done(request, f"Sent {action} to {hostname}.", replies=replies or [])


async def api_retry(request: Request) -> Response:
    """
    summary: Send a failed or revoked task again, with the arguments the result store kept
      (result_extended=True); the new task's id.
    responses:
      200: {description: Sent again.}
      409: {description: Not failed or revoked, or its arguments were not kept.}
    """
    board, task_id = board_of(request), request.path_params["task_id"]
    try:
        name, new_id = await run_in_threadpool(_send_again, board, task_id)
    except LookupError as exc:
        return failed(request, 409, str(exc))
    return done(request, f"Sent {name} again as task {new_id}.", task_id=new_id)


def _send_again(board: Dashboard, task_id: str) -> tuple[str, str]:
    # The values come from the result store: events carry only the arguments' text.
    app = board.app
    meta = app.backend.get_task_meta(task_id)
    state = meta.get("status")
    if state not in (states.FAILURE, states.REVOKED):
        raise LookupError(f"task {task_id} is {state}: only a failed or revoked task is sent again")
    name = meta.get("name")
    if not name or "args" not in meta:
        raise LookupError(
            f"the result store keeps no arguments of task {task_id}: set result_extended=True "
            f"so that failed tasks can be sent again"
        )
    options = {"queue": meta["queue"]} if meta.get("queue") else {}
    sent = app.send_task(name, args=meta["args"], kwargs=meta.get("kwargs") or {}, **options)
    return str(name), str(sent.id)


def _worker_call(board: Dashboard, action: str, body: dict[str, Any]) -> Callable[..., Any]:
    control = board.app.control
    if action in ("pool-grow", "pool-shrink"):
        raw = body.get("n", 1)
        try:
            n = int(raw)
        except (TypeError, ValueError):
            raise ValueError(f"n must be a whole number, not {raw!r}") from None
        if n < 1:
            raise ValueError(f"n must be at least 1, not {n}")
        method = control.pool_grow if action == "pool-grow" else control.pool_shrink
        return lambda **kw: method(n, **kw)
    if action in ("add-consumer", "cancel-consumer"):
        queue = str(body.get("queue") or "").strip()
        if not queue:
            raise ValueError("queue is missing: name the queue to consume from or to cancel")
        method = control.add_consumer if action == "add-consumer" else control.cancel_consumer
        return lambda **kw: method(queue, **kw)
    return cast("Callable[..., Any]", control.shutdown)  # control's methods are untyped


__all__ = ["api_beat", "api_beat_action", "api_retry", "api_worker_action", "beat_entries"]
