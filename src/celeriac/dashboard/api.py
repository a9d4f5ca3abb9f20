"""The JSON API: one read endpoint behind each page, the actions, and the live stream.

Runtime layer (dashboard). Handlers that touch the broker are plain functions (Starlette
runs them on its thread pool); the stream is async and computes each snapshot on a thread.
An action answers JSON, or a short HTML message when htmx asked (``HX-Request``), so the
pages and scripts share one endpoint. Each docstring's YAML part feeds the OpenAPI schema.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any, cast
from urllib.parse import parse_qs

from markupsafe import escape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from celeriac.dashboard import queries
from celeriac.dashboard.queries import Dashboard

STREAM_EVERY = 1.0  # seconds between two snapshots on the stream
SERIES_EVERY = 2  # snapshots between two that carry the hour's chart series
SIGNALS = ("SIGTERM", "SIGKILL", "SIGINT", "SIGUSR1")


def board_of(request: Request) -> Dashboard:
    return cast(Dashboard, request.app.state.board)  # Starlette's state is untyped


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {value}")
    return value


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


# -- reads ---------------------------------------------------------------------------------
def api_overview(request: Request) -> Response:
    """
    summary: Workers online, task rates by state, failure rate, queue depths, the hour's series.
    responses:
      200: {description: The overview.}
    """
    return JSONResponse(queries.overview(board_of(request)))


def api_workers(request: Request) -> Response:
    """
    summary: Each worker's pool, slots, processed count, heartbeat age and running tasks.
    responses:
      200: {description: "The workers, online or offline (forgotten after a TTL)."}
    """
    return JSONResponse({"workers": queries.workers(board_of(request))})


def api_tasks(request: Request) -> Response:
    """
    summary: Tasks seen, newest first; query parameters search, state, name, since, until
      (unix seconds or ISO 8601), limit, offset.
    responses:
      200: {description: A page of tasks and the total that matched.}
      400: {description: A bad parameter.}
    """
    params = request.query_params
    try:
        limit = _int(request, "limit", 50, 1, 1000)
        offset = _int(request, "offset", 0, 0, 10**9)
        since = queries.moment(params.get("since", ""), "since")
        until = queries.moment(params.get("until", ""), "until")
    except ValueError as exc:
        return error(400, str(exc))
    found = queries.tasks(
        board_of(request), params.get("search", ""), params.get("state", ""),
        params.get("name", ""), limit, offset, since, until,
    )  # fmt: skip
    return JSONResponse(found)


def api_runtimes(request: Request) -> Response:
    """
    summary: Runtime p50, p95 and p99 per task name over the succeeded tasks kept.
    responses:
      200: {description: One row per task name.}
    """
    return JSONResponse({"runtimes": queries.runtimes(board_of(request))})


def api_task(request: Request) -> Response:
    """
    summary: One task with its arguments, result or traceback, timeline and family.
    responses:
      200: {description: The task.}
      404: {description: Neither the events nor the result store know it.}
    """
    task_id = request.path_params["task_id"]
    found = queries.task(board_of(request), task_id)
    return JSONResponse(found) if found else error(404, f"no task {task_id} is known")


def api_queues(request: Request) -> Response:
    """
    summary: Ready, delayed and dead-letter counts of each known queue.
    responses:
      200: {description: The queues.}
    """
    return JSONResponse({"queues": queries.queues(board_of(request))})


def api_dead_letters(request: Request) -> Response:
    """
    summary: Dead letters, by queue and reason (query parameters queue, reason, limit).
    responses:
      200: {description: The dead letters and their count per reason.}
      400: {description: A bad parameter.}
    """
    params = request.query_params
    try:
        limit = _int(request, "limit", queries.DEAD_LETTER_LIMIT, 1, 10_000)
        found = queries.dead_letters(
            board_of(request), params.get("queue", ""), params.get("reason", ""), limit
        )
    except ValueError as exc:
        return error(400, str(exc))
    return JSONResponse(found)


def api_dead_letter(request: Request) -> Response:
    """
    summary: One dead letter with its message headers.
    responses:
      200: {description: The dead letter.}
      404: {description: Not among the queue's dead letters.}
    """
    queue, entry = request.path_params["queue"], request.path_params["entry_id"]
    found = queries.dead_letter(board_of(request), queue, entry)
    return JSONResponse(found) if found else error(404, f"no dead letter {entry} in {queue}")


def api_csrf(request: Request) -> Response:
    """
    summary: The CSRF token to send as X-CSRF-Token with each action.
    responses:
      200: {description: The token of the authenticated user.}
    """
    return JSONResponse({"csrf_token": request.state.csrf_token})


# -- actions -------------------------------------------------------------------------------
async def read_body(request: Request) -> dict[str, Any]:
    """A JSON object or a form (htmx sends forms)."""
    raw = await request.body()
    if not raw:
        return {}
    if request.headers.get("content-type", "").startswith("application/json"):
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object")
        return data
    return {key: values if len(values) > 1 else values[0]
            for key, values in parse_qs(raw.decode()).items()}  # fmt: skip


def done(request: Request, message: str, **data: Any) -> Response:
    if request.headers.get("hx-request"):
        return HTMLResponse(f'<p class="flash ok" role="status">{escape(message)}</p>')
    return JSONResponse({"ok": True, "message": message, **data})


def failed(request: Request, status: int, message: str) -> Response:
    if request.headers.get("hx-request"):
        # htmx swaps 2xx answers only: the refusal is shown the same way, marked as one.
        return HTMLResponse(f'<p class="flash error" role="alert">{escape(message)}</p>')
    return error(status, message)


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


async def api_revoke(request: Request) -> Response:
    """
    summary: Revoke a task (body terminate=true also stops it where it runs, with signal).
    responses:
      200: {description: Revoked.}
      400: {description: A bad signal.}
    """
    task_id = request.path_params["task_id"]
    try:
        body = await read_body(request)
    except ValueError as exc:
        return failed(request, 400, str(exc))
    terminate, signal = _flag(body.get("terminate")), str(body.get("signal") or "SIGTERM")
    if signal not in SIGNALS:
        return failed(request, 400, f"signal must be one of {', '.join(SIGNALS)}")
    app = board_of(request).app
    await run_in_threadpool(app.control.revoke, task_id, terminate=terminate, signal=signal)
    how = f" and terminated ({signal})" if terminate else ""
    return done(request, f"Task {task_id} revoked{how}.", terminate=terminate)


async def api_purge_queue(request: Request) -> Response:
    """
    summary: Drop every ready and delayed message of a queue (no undo).
    responses:
      200: {description: How many messages were dropped.}
    """
    board, queue = board_of(request), request.path_params["queue"]
    if queue not in board.queues():
        return failed(request, 404, f"{queue!r} is not a known queue")

    def purge() -> int:
        with board.broker_lock:
            return int(board.app.broker.purge(queue))

    count = await run_in_threadpool(purge)
    return done(request, f"Purged {count} message(s) from {queue}.", purged=count)


async def api_replay(request: Request) -> Response:
    """
    summary: Send dead letters back to their queue (body entry_ids, else all of the queue).
    responses:
      200: {description: How many were replayed.}
    """
    board, queue = board_of(request), request.path_params["queue"]
    try:
        body = await read_body(request)
    except ValueError as exc:
        return failed(request, 400, str(exc))
    ids = body.get("entry_ids")
    entry_ids = None if ids in (None, "", "all") else [ids] if isinstance(ids, str) else list(ids)

    def replay() -> int:
        with board.broker_lock:
            return int(board.app.broker.replay_dead_letters(queue, entry_ids))

    count = await run_in_threadpool(replay)
    return done(request, f"Replayed {count} dead letter(s) to {queue}.", replayed=count)


async def api_purge_dead_letters(request: Request) -> Response:
    """
    summary: Delete every dead letter of a queue (no undo).
    responses:
      200: {description: How many were deleted.}
    """
    board, queue = board_of(request), request.path_params["queue"]

    def purge() -> int:
        with board.broker_lock:
            return int(board.app.broker.purge_dead_letters(queue))

    count = await run_in_threadpool(purge)
    return done(request, f"Deleted {count} dead letter(s) of {queue}.", deleted=count)


# -- the live stream -----------------------------------------------------------------------
async def api_stream(request: Request) -> Response:
    """
    summary: Server-sent events, one snapshot a second (overview; workers=1 adds the
      workers, task=<id> that task; limit=N ends after N snapshots).
    responses:
      200: {description: A text/event-stream.}
    """
    board, params = board_of(request), request.query_params
    with_workers, task_id = params.get("workers") == "1", params.get("task", "")
    try:
        limit = _int(request, "limit", 0, 0, 10**6)
    except ValueError as exc:
        return error(400, str(exc))

    def snapshot(tick: int) -> dict[str, Any]:
        data: dict[str, Any] = {"overview": queries.overview(board, tick % SERIES_EVERY == 0)}
        if with_workers:
            data["workers"] = queries.workers(board)
        if task_id:
            data["task"] = queries.task(board, task_id)
        return data

    async def events() -> AsyncIterator[str]:
        tick = 0
        while not limit or tick < limit:
            data = await run_in_threadpool(snapshot, tick)
            yield f"event: snapshot\ndata: {json.dumps(data, default=_default)}\n\n"
            tick += 1
            if (limit and tick >= limit) or await request.is_disconnected():
                return
            await asyncio.sleep(STREAM_EVERY)

    headers = {"cache-control": "no-store", "x-accel-buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def _default(value: Any) -> str:
    return repr(value)  # a value JSON cannot hold (an event field of another type)


__all__ = ["board_of"]
